"""Per-member quality prediction with cost-aware selection.

For every member a model predicts the quality of its answer to a prompt
(logistic regression for 0/1 quality, ridge regression otherwise, or the
mean quality of the ``k`` nearest training prompts); the router picks the
member maximising predicted quality minus ``lam`` times its expected cost.

The kNN model's neighbourhood can be calibrated: ``temperature`` weighs each
neighbour by ``exp(cosine / temperature)`` (closer ones count more) and ``prior``
adds that many pseudo-neighbours at the member's mean quality, so a prompt far
from every training prompt falls back to the member's average.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Unpack

import numpy as np

from pinfactory.embeddings import Vectors
from pinfactory.errors import RoutingError
from pinfactory.routing.learned import CostAwareParams, CostAwareRouter, Floats
from pinfactory.routing.neighbours import NeighbourIndex
from pinfactory.routing.table import RoutingTable

QualityModel = Literal["logistic", "knn"]


class QualityRouter(CostAwareRouter):
    kind: ClassVar[str] = "quality"

    def __init__(
        self,
        model: QualityModel = "logistic",
        *,
        k: int = 10,
        c: float = 1.0,
        temperature: float | None = None,
        prior: float = 0.0,
        **common: Unpack[CostAwareParams],
    ) -> None:
        super().__init__(**common)
        if (temperature is not None and temperature <= 0) or prior < 0:
            raise RoutingError("quality knn: temperature must be > 0 and prior >= 0")
        if model not in ("logistic", "knn"):
            raise RoutingError(f"quality model '{model}'; allowed: logistic, knn")
        self.model = model
        self.k = k
        self.c = c
        self.temperature = temperature
        self.prior = prior

    def _fit(self, vectors: Vectors, table: RoutingTable) -> None:
        if self.model == "knn":
            self.index_ = NeighbourIndex(vectors)
            self.quality_ = table.quality.copy()
            return
        binary = bool(np.isin(table.quality, (0.0, 1.0)).all())
        self.link_ = "sigmoid" if binary else "identity"
        weights, biases = [], []
        for column in table.quality.T:
            w, b = self._fit_one(vectors, column, binary)
            weights.append(w)
            biases.append(b)
        self.weights_ = np.stack(weights, axis=1)
        self.bias_ = np.asarray(biases)

    def _fit_one(self, vectors: Vectors, target: Floats, binary: bool) -> tuple[Floats, float]:
        if binary and 0 < target.mean() < 1:
            # scikit-learn (seconds to import) loads only when a model is fitted
            from sklearn.linear_model import LogisticRegression

            fitted = LogisticRegression(C=self.c, max_iter=2000).fit(vectors, target)
            return fitted.coef_[0].astype(np.float64), float(fitted.intercept_[0])
        if binary:  # always right or always wrong: a constant
            p = float(np.clip(target.mean(), 1e-4, 1 - 1e-4))
            return np.zeros(vectors.shape[1]), float(np.log(p / (1 - p)))
        # scikit-learn (seconds to import) loads only when a model is fitted
        from sklearn.linear_model import Ridge

        ridge = Ridge(alpha=1.0 / self.c).fit(vectors, target)
        return ridge.coef_.astype(np.float64), float(ridge.intercept_)

    def predicted_quality(self, vectors: Vectors) -> Floats:
        """(n, members) predicted quality."""
        if self.model == "knn":
            near = self.index_.nearest(vectors, self.k)
            temperature, prior = getattr(self, "temperature", None), getattr(self, "prior", 0.0)
            if temperature is None and not prior:
                mean: Floats = self.quality_[near].mean(axis=1)
                return mean
            sims = np.take_along_axis(self.index_.similarities(vectors), near, axis=1)
            weights = np.ones_like(sims, dtype=np.float64)
            if temperature is not None:
                weights = np.exp((sims - sims.max(axis=1, keepdims=True)) / temperature)
            total = np.einsum("nk,nkm->nm", weights, self.quality_[near])
            total += prior * self.quality_.mean(axis=0)
            calibrated: Floats = total / (weights.sum(axis=1, keepdims=True) + prior)
            return calibrated
        z = vectors @ self.weights_ + self.bias_
        predicted: Floats = 1.0 / (1.0 + np.exp(-z)) if self.link_ == "sigmoid" else z
        return predicted

    def _explain(self, scores: Floats, choice: int, **knobs: Any) -> str:
        lam = self.cost_weight(knobs)
        cost = knobs.get("cost", self.mean_cost_)
        quality = scores + lam * cost
        best = int(np.argmax(quality))
        text = (
            f"predicted quality {quality[choice]:.2f} at ${cost[choice]:.2e} "
            f"for '{self.members_[choice]}'"
        )
        if best != choice:
            text += f" beats '{self.members_[best]}' {quality[best]:.2f} at ${cost[best]:.2e}"
        return text + f" under lambda={lam:g}/USD"
