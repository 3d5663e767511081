"""Semantic routes: each route is defined by example utterances.

A query's score for a route is the mean cosine similarity of its ``k``
nearest example utterances (``scoring: nearest``), or its similarity to the
route's centroid (``scoring: centroid``). The best route wins when its score
clears that route's threshold; otherwise the router abstains and the
declared fallback answers, and the reason says so.

```yaml
routing:
  kind: semantic
  fallback: local
  threshold: 0.45
  routes:
    - {name: orders, member: orders, utterances: ["where is my parcel", ...]}
```

Example embeddings are cached on disk keyed by content hash, so a restart
reads them instead of encoding again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.embeddings import CachedEncoder, Vectors, get_encoder
from pinfactory.errors import RoutingError, TeamFileError
from pinfactory.request import Request
from pinfactory.routing.base import (
    Decision,
    MemberTable,
    check_encoder,
    member_cost,
    member_tier,
    resolve_member,
)
from pinfactory.tiers import RouterContext

Scoring = Literal["nearest", "centroid"]


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    member: str = Field(description="a member name, or 'tier:NAME'")
    utterances: list[str] = Field(min_length=1)
    threshold: float | None = Field(default=None, ge=-1, le=1)


class SemanticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = "semantic"
    fallback: str
    routes: list[Route] = Field(min_length=1)
    threshold: float = Field(default=0.4, ge=-1, le=1)
    encoder: str = "minilm-static"
    scoring: Scoring = "nearest"
    k: int = Field(default=3, ge=1)


class SemanticRouter:
    """Nearest-route routing over normalised embeddings, with abstention."""

    kind = "semantic"

    def __init__(
        self,
        routes: Sequence[Route],
        fallback: str,
        *,
        threshold: float = 0.4,
        encoder: str = "minilm-static",
        scoring: Scoring = "nearest",
        k: int = 3,
        members: MemberTable | None = None,
    ) -> None:
        self.routes = list(routes)
        self.fallback = fallback
        self.threshold = threshold
        self.encoder = encoder
        self.scoring = scoring
        self.k = k
        self.members = members or {}
        self._extra: list[tuple[str, int]] = []  # (utterance, route index) learned from data
        self._index: tuple[Vectors, npt.NDArray[np.int64]] | None = None
        self._grid: tuple[object, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]] | None] | None
        self._grid = None  # (the index it was built for, the padded layout)
        self._resolved: list[str | None] = []
        self._targets_for: MemberTable | None = None

    @property
    def route_names(self) -> list[str]:
        return [r.name for r in self.routes]

    # -- learning ---------------------------------------------------------------

    def learn(self, texts: Sequence[str], labels: Sequence[str | None]) -> Self:
        """Add labelled texts as example utterances (labels are route names;
        ``None`` is skipped)."""
        position = {name: i for i, name in enumerate(self.route_names)}
        for text, label in zip(texts, labels, strict=True):
            if label is not None:
                if label not in position:
                    raise RoutingError(f"label '{label}' is not a route: {self.route_names}")
                self._extra.append((text, position[label]))
        self._index = None
        return self

    def fit(self, texts: Sequence[str], labels: Sequence[str | None]) -> Self:
        """Calibrate each route's threshold on held-out labelled queries.

        ``None`` marks a query no route should claim. A route's threshold is
        the one that makes the most right calls (accept when its route is
        right, reject otherwise) among the queries it scores best on.
        """
        scores = self.route_scores(texts)
        best = scores.argmax(axis=1)
        top = scores[np.arange(len(texts)), best]
        position = {name: i for i, name in enumerate(self.route_names)}
        truth = np.array([position.get(label, -1) if label else -1 for label in labels])
        thresholds = {}
        for r, name in enumerate(self.route_names):
            mine = best == r
            if not mine.any():
                thresholds[name] = self.threshold_of(r)
                continue
            right = truth[mine] == r
            candidates = np.unique(np.concatenate([top[mine], [self.threshold_of(r)]]))
            calls = [((top[mine] >= t) == right).sum() for t in candidates]
            thresholds[name] = float(candidates[int(np.argmax(calls))])
        self.thresholds_ = thresholds
        return self

    def threshold_of(self, route: int) -> float:
        """The score a request needs for route number ``route`` to claim it."""
        fitted = getattr(self, "thresholds_", None)
        if fitted is not None:
            return float(fitted[self.routes[route].name])
        own = self.routes[route].threshold
        return self.threshold if own is None else own

    # -- answering --------------------------------------------------------------

    def _examples(self) -> tuple[Vectors, npt.NDArray[np.int64]]:
        if self._index is None:
            texts = [u for r in self.routes for u in r.utterances] + [t for t, _ in self._extra]
            owner = [i for i, r in enumerate(self.routes) for _ in r.utterances]
            owner += [i for _, i in self._extra]
            vectors = CachedEncoder(get_encoder(self.encoder)).encode(texts)
            self._index = (vectors, np.asarray(owner, dtype=np.int64))
        return self._index

    def route_scores(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """(n, routes) similarity of each text to each route."""
        return self.scores_for(get_encoder(self.encoder).encode(list(texts)))

    def scores_for(self, queries: Vectors) -> npt.NDArray[np.float64]:
        vectors, owner = self._examples()
        layout = self._layout()
        if layout is not None:  # every route has k examples: one gather, one partition
            sims = queries @ vectors.T
            grid = np.where(layout[1], sims[:, layout[0]], -np.inf)  # (n, routes, widest)
            top = -np.partition(-grid, self.k - 1, axis=2)[:, :, : self.k]
            scores: npt.NDArray[np.float64] = top.mean(axis=2).astype(np.float64)
            return scores
        sims = queries @ vectors.T
        out = np.empty((len(queries), len(self.routes)))
        for r in range(len(self.routes)):
            mine = sims[:, owner == r]
            if self.scoring == "centroid":
                centroid = vectors[owner == r].mean(axis=0)
                centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
                out[:, r] = queries @ centroid
            else:
                k = min(self.k, mine.shape[1])
                out[:, r] = -np.partition(-mine, k - 1, axis=1)[:, :k].mean(axis=1)
        return out

    def _layout(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]] | None:
        """For ``nearest`` scoring: each route's example columns as one row of a padded
        (routes, widest) grid and where it is real; None when a route has fewer than k."""
        index = self._examples()
        if self._grid is not None and self._grid[0] is index:
            return self._grid[1]
        owner = index[1]
        counts = np.bincount(owner, minlength=len(self.routes))
        layout = None
        if self.scoring == "nearest" and len(owner) and counts.min() >= self.k:
            columns = np.zeros((len(self.routes), int(counts.max())), dtype=np.int64)
            real = np.zeros(columns.shape, dtype=np.bool_)
            for r in range(len(self.routes)):
                mine = np.flatnonzero(owner == r)
                columns[r, : len(mine)] = mine
                real[r, : len(mine)] = True
            layout = (columns, real)
        self._grid = (index, layout)
        return layout

    def predict(self, texts: Sequence[str]) -> npt.NDArray[np.int64]:
        """Each text's route index, or -1 where the router abstains."""
        scores = self.route_scores(texts)
        best = scores.argmax(axis=1)
        limits = np.array([self.threshold_of(r) for r in range(len(self.routes))])
        top = scores[np.arange(len(texts)), best]
        return np.where(top >= limits[best], best, -1).astype(np.int64)

    def decide(self, request: Request) -> Decision:
        return self.decide_batch([request])[0]

    def decide_batch(self, requests: Sequence[Request]) -> list[Decision]:
        """Decisions for many requests with one encoding pass."""
        if not requests:
            return []
        scores = self.route_scores([r.text for r in requests])
        return [self._decision(row) for row in scores]

    def _decision(self, scores: npt.NDArray[np.float64]) -> Decision:
        # Python floats: a handful of routes is faster without numpy scalars; the order is
        # argsort's reversed (ties: the later route first)
        row = scores.tolist()
        order = sorted(range(len(row)), key=lambda i: (row[i], i), reverse=True)
        targets = self._targets()
        nearest = ", ".join(f"{self.routes[i].name} {row[i]:.2f}" for i in order[:3])
        member_scores: dict[str, float] = {}
        for i in order:
            target = targets[i]
            if target is not None and target not in member_scores:
                member_scores[target] = round(row[i], 4)
        off: list[str] = []  # routes that would claim it but send to a member that is off
        below = ""
        for i in order:
            route = self.routes[i]
            target = targets[i]
            limit = self.threshold_of(int(i))
            if target is None:  # its member is not enabled: the next route may place it
                if row[i] >= limit:
                    off.append(f"'{route.name}' {row[i]:.2f} sends to {route.member}, not enabled")
                continue
            if row[i] < limit:
                below = f"best enabled '{route.name}' {row[i]:.2f} < {limit:.2f}"
                break
            margin = float(row[i] - row[order[1]]) if len(order) > 1 else 1.0
            return Decision(
                member=target,
                reason=f"semantic route '{route.name}' (nearest routes: {nearest})",
                router=self.kind,
                scores=member_scores,
                confidence=float(min(1.0, max(0.0, 0.5 + margin * 2))),
                estimated_cost_usd=member_cost(self.members, target),
                tier=member_tier(self.members, target),
                rule=route.name,
            )
        why = "; ".join(part for part in (below, *off) if part)
        return Decision(
            member=self.fallback,
            reason=(
                f"no semantic route above its threshold ({why}; "
                f"nearest routes: {nearest}); fallback '{self.fallback}'"
            ),
            router=self.kind,
            scores=member_scores,
            confidence=float(max(0.0, 1.0 - max(row[order[0]], 0.0))),
            estimated_cost_usd=member_cost(self.members, self.fallback),
            tier=member_tier(self.members, self.fallback),
            fallback=True,
        )

    def _targets(self) -> list[str | None]:
        """Each route's member as :meth:`_resolve` gives it, kept while the table is the same."""
        if self._targets_for is not self.members or len(self._resolved) != len(self.routes):
            self._resolved = [resolve_member(self.members, route.member) for route in self.routes]
            self._targets_for = self.members
        return self._resolved

    @classmethod
    def from_config(cls, config: dict[str, Any], context: RouterContext) -> SemanticRouter:
        parsed = SemanticConfig.model_validate(config)
        for route in parsed.routes:
            if context.unknown(route.member):
                raise TeamFileError(
                    f"semantic route '{route.name}' sends to unknown member "
                    f"'{route.member}'; members: {context.allowed()}"
                )
        check_encoder(parsed.encoder)
        return cls(
            parsed.routes,
            parsed.fallback,
            threshold=parsed.threshold,
            encoder=parsed.encoder,
            scoring=parsed.scoring,
            k=parsed.k,
            members=dict(context.members),
        )
