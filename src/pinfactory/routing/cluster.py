"""Cluster-based routing: what each member is good at, per region of prompt space.

Training prompts are clustered by k-means on their (normalised) embeddings; each
cluster keeps every member's mean quality there, shrunk towards the member's
overall mean by ``prior`` pseudo-prompts (a small cluster says little). A prompt's
predicted quality for a member is the similarity-weighted mean over its ``top``
nearest clusters (softmax of cosine / ``temperature``); the router picks the member
maximising predicted quality minus ``lam`` times its mean cost, as
:class:`~pinfactory.routing.quality.QualityRouter` does. This is the training-free
recipe of Avengers-Pro (Zhang et al. 2025): cluster, profile, trade off.
"""

from __future__ import annotations

from typing import ClassVar, Unpack

import numpy as np

from pinfactory.embeddings import Vectors
from pinfactory.routing.learned import CostAwareParams, CostAwareRouter, Floats
from pinfactory.routing.table import RoutingTable


class ClusterRouter(CostAwareRouter):
    kind: ClassVar[str] = "cluster"
    explanation: ClassVar[str] = "expected quality {quality:.2f} in the prompt's nearest clusters"

    def __init__(
        self,
        *,
        clusters: int = 32,
        top: int = 3,
        temperature: float = 0.05,
        prior: float = 5.0,
        **common: Unpack[CostAwareParams],
    ) -> None:
        super().__init__(**common)
        self.clusters = clusters
        self.top = top
        self.temperature = temperature
        self.prior = prior

    def _fit(self, vectors: Vectors, table: RoutingTable) -> None:
        # scikit-learn (seconds to import) loads only when a model is fitted
        from sklearn.cluster import KMeans

        k = max(1, min(self.clusters, len(vectors) // 4 or 1))
        kmeans = KMeans(n_clusters=k, n_init=4, random_state=self.seed).fit(vectors)
        centres = kmeans.cluster_centers_
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        self.centres_ = centres.astype(np.float32)
        overall = table.quality.mean(axis=0)
        profile = np.empty((k, len(self.members_)))
        for c in range(k):
            mine = table.quality[kmeans.labels_ == c]
            profile[c] = (mine.sum(axis=0) + self.prior * overall) / (len(mine) + self.prior)
        self.profile_ = profile

    def predicted_quality(self, vectors: Vectors) -> Floats:
        """(n, members) quality expected from the prompt's nearest clusters."""
        sims = np.asarray(vectors @ self.centres_.T, dtype=np.float64)
        top = min(self.top, sims.shape[1])
        nearest = np.argpartition(-sims, top - 1, axis=1)[:, :top]
        near = np.take_along_axis(sims, nearest, axis=1)
        weights = np.exp((near - near.max(axis=1, keepdims=True)) / self.temperature)
        weights /= weights.sum(axis=1, keepdims=True)
        predicted: Floats = np.einsum("nk,nkm->nm", weights, self.profile_[nearest])
        return predicted
