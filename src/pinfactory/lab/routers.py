"""Grid router names -> objects the lab can fit on a train table and replay on a test table.

Every lab router has ``fit(train) -> self``, ``knobs()`` (the values its knob
is swept over; ``[None]`` when it has none) and ``predict(test, knob)`` (one
member index per test prompt). Kinds:

- ``oracle``: per prompt, the cheapest member with the best quality (it reads
  the answers: an upper bound, not a router). Swept over a cost weight.
- ``best_single``: the member with the best mean quality on the whole train split
  (cheaper, then more sole wins on ties; remaining ties drawn by the seed).
- ``random``: uniform over members; swept, with probability ``knob`` the
  train split's best member, else its cheapest (RouteLLM's random router).
- ``rules``: a hand-written :class:`~pinfactory.routing.rules.RulesRouter`
  read from a rules YAML (``rules:`` and ``fallback:``); routes name members.
- ``python``: any class with ``fit(table)`` and ``predict(prompts, **knobs)``,
  named ``module:Class`` (the routing package's learned routers); ``knob``
  names the keyword swept (``lam``), ``sweep`` lists values or ``auto`` (the
  class's own grid, :func:`pinfactory.routing.learned.lambda_grid`, with
  ``points`` values).
- ``semantic``, ``cascade``, ``hybrid``: the routing package's
  :class:`~pinfactory.routing.semantic.SemanticRouter`,
  :class:`~pinfactory.routing.cascade.Cascade` and
  :class:`~pinfactory.routing.hybrid.HybridRouter` fitted from the training
  split (see :mod:`pinfactory.lab.composed`).

``predict`` returns one member index per prompt, or a
:class:`~pinfactory.lab.metrics.Replay` (per-prompt quality and cost) for a
router that pays for more than one member (a cascade).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import RoutingError
from pinfactory.lab.encoders import lab_encoder
from pinfactory.lab.metrics import Replay
from pinfactory.plugins import PluginNotFound, import_object
from pinfactory.request import Request
from pinfactory.routing.learned import CostAwareRouter, LearnedRouter, lambda_grid
from pinfactory.routing.rules import RulesRouter
from pinfactory.routing.rules_file import load_rules_file
from pinfactory.routing.table import RoutingTable

Indices = npt.NDArray[np.int64]
Knob = float | None
Prediction = Indices | Replay
Kind = Literal[
    "oracle", "best_single", "random", "rules", "python", "semantic", "cascade", "hybrid"
]


class LabRouter(Protocol):
    name: str

    def fit(self, train: RoutingTable) -> LabRouter: ...

    def knobs(self) -> list[Knob]: ...

    def predict(self, test: RoutingTable, knob: Knob = None) -> Prediction: ...


class RouterSpec(BaseModel):
    """One router row of a grid file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: Kind | None = None
    target: str | None = Field(default=None, description="module:Class for kind python")
    params: dict[str, Any] = {}
    knob: str | None = Field(default=None, description="keyword swept in predict (python)")
    default: float | None = Field(default=None, description="knob value for the results row")
    sweep: list[float] | Literal["auto"] | None = None
    points: int = Field(default=41, ge=2, description="values in an auto sweep")
    seeded: bool | None = Field(
        default=None,
        description="whether the fitted router depends on the seed (None: python and "
        "composed routers do, baselines other than random and rules do not)",
    )
    rules: str | None = Field(default=None, description="rules YAML, relative to the grid file")
    datasets: list[str] | None = Field(
        default=None, description="names of the grid's datasets this row runs on (None: all)"
    )
    family: Literal["baseline", "rules", "learned"] | None = None

    @property
    def resolved_kind(self) -> str:
        if self.kind is not None:
            return self.kind
        if self.name in ("oracle", "best_single", "random"):
            return self.name
        return "python" if self.target else "rules"

    @property
    def resolved_seeded(self) -> bool:
        if self.seeded is not None:
            return self.seeded
        return self.resolved_kind not in ("oracle", "rules")

    @property
    def resolved_family(self) -> str:
        if self.family is not None:
            return self.family
        kind = self.resolved_kind
        if kind in ("oracle", "best_single", "random"):
            return "baseline"
        return "rules" if kind == "rules" else "learned"


def tied_best(train: RoutingTable) -> list[int]:
    """The members with the best mean quality, then the lowest mean cost, then the most
    prompts they alone answer best; usually one, several on balanced intent data."""
    quality = train.quality.mean(axis=0)
    cost = train.cost.mean(axis=0)
    top = np.flatnonzero(np.isclose(quality, quality.max(), rtol=0, atol=1e-12))
    top = top[np.isclose(cost[top], cost[top].min(), rtol=1e-9, atol=0)]
    best = train.quality.max(axis=1, keepdims=True)
    alone = (train.quality >= best) & ((train.quality >= best).sum(axis=1, keepdims=True) == 1)
    wins = alone.sum(axis=0)[top]
    return [int(i) for i in top[wins == wins.max()]]


def rank_members(train: RoutingTable, seed: int = 0) -> tuple[int, int]:
    """(best member, cheapest member) indices. Ties that no measure breaks are broken by
    ``seed``, not by member order, so no member is favoured for being listed first."""
    tied = tied_best(train)
    best = tied[0] if len(tied) == 1 else int(np.random.default_rng(seed).choice(tied))
    cost = train.cost.mean(axis=0)
    cheap = np.flatnonzero(np.isclose(cost, cost.min(), rtol=1e-9, atol=0))
    cheapest = int(cheap[0]) if len(cheap) == 1 else int(np.random.default_rng(seed).choice(cheap))
    return best, cheapest


class Oracle:
    """Reads the test answers: the per-prompt best, or best quality minus knob x cost."""

    def __init__(self, name: str = "oracle", points: int = 41) -> None:
        self.name = name
        self.points = points

    def fit(self, train: RoutingTable) -> Oracle:
        self.scale_ = 1.0 / max(float(train.cost.mean(axis=0).max()), 1e-12)
        return self

    def knobs(self) -> list[Knob]:
        return [None, 0.0, *(float(x) for x in np.logspace(-3, 2, self.points) * self.scale_)]

    def predict(self, test: RoutingTable, knob: Knob = None) -> Indices:
        if knob is None:
            return test.oracle()
        utility = test.quality - knob * test.cost
        best = utility.max(axis=1, keepdims=True)
        masked = np.where(utility >= best - 1e-12, test.cost, np.inf)
        return np.asarray(masked.argmin(axis=1), dtype=np.int64)


class BestSingle:
    """One member for every prompt: the best on the training split (the grid fits it on the
    whole split whatever the sample size). Members tied on quality, cost and sole wins are
    drawn by the seed (``tied_`` lists them), so the mean over seeds is not member order's."""

    def __init__(self, name: str = "best_single", seed: int = 0) -> None:
        self.name = name
        self.seed = seed

    def fit(self, train: RoutingTable) -> BestSingle:
        self.tied_ = tied_best(train)
        self.member_, _ = rank_members(train, self.seed)
        return self

    def knobs(self) -> list[Knob]:
        return [None]

    def predict(self, test: RoutingTable, knob: Knob = None) -> Indices:  # noqa: ARG002
        return np.full(len(test), self.member_, dtype=np.int64)


class RandomRouter:
    def __init__(self, name: str = "random", seed: int = 0, points: int = 21) -> None:
        self.name = name
        self.seed = seed
        self.points = points

    def fit(self, train: RoutingTable) -> RandomRouter:
        self.best_, self.cheapest_ = rank_members(train, self.seed)
        self.members_ = len(train.members)
        return self

    def knobs(self) -> list[Knob]:
        return [None, *(float(x) for x in np.linspace(0, 1, self.points))]

    def predict(self, test: RoutingTable, knob: Knob = None) -> Indices:
        rng = np.random.default_rng(self.seed)
        if knob is None:
            return rng.integers(0, self.members_, size=len(test), dtype=np.int64)
        strong = rng.random(len(test)) < knob
        return np.where(strong, self.best_, self.cheapest_).astype(np.int64)


class RulesLab:
    """A hand-written rules file replayed over the prompts; it learns nothing."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def fit(self, train: RoutingTable) -> RulesLab:
        config = load_rules_file(self.path)
        unknown = {r.route for r in config.rules} | {config.fallback}
        unknown -= set(train.members)
        if unknown:
            raise RoutingError(
                f"rules file {self.path}: routes to {', '.join(sorted(unknown))}, "
                f"which are not members of {train.name} ({', '.join(train.members)})"
            )
        self.router_ = RulesRouter(config.rules, config.fallback)
        self.index_ = {m: i for i, m in enumerate(train.members)}
        return self

    def knobs(self) -> list[Knob]:
        return [None]

    def predict(self, test: RoutingTable, knob: Knob = None) -> Indices:  # noqa: ARG002
        return np.array(
            [self.index_[self.router_.decide(Request.from_text(p)).member] for p in test.prompts],
            dtype=np.int64,
        )


class PythonRouter:
    """Adapter for a router class with ``fit(table)`` and ``predict(prompts, **knobs)``."""

    def __init__(self, spec: RouterSpec, seed: int) -> None:
        self.name = spec.name
        self.spec = spec
        self.seed = seed

    def _class(self) -> type[Any]:
        target = self.spec.target or ""
        try:
            found: type[Any] = import_object(target)
        except PluginNotFound as exc:
            raise RoutingError(f"router '{self.name}': {exc}") from None
        return found

    @property
    def encoder(self) -> str | None:
        """The encoder the router embeds with: the grid row's, else the lab's default for
        its kind (``lab/encoders.py``); None for a class that is not a learned router."""
        cls = self._class()
        if not (isinstance(cls, type) and issubclass(cls, LearnedRouter)):
            return None
        return str(self.spec.params.get("encoder") or lab_encoder(cls.kind))

    def fit(self, train: RoutingTable) -> PythonRouter:
        cls = self._class()
        params = dict(self.spec.params)
        learned = isinstance(cls, type) and issubclass(cls, LearnedRouter)
        if learned or "seed" in inspect.signature(cls).parameters:  # learned: in **common
            params.setdefault("seed", self.seed)
        encoder = self.encoder
        if encoder is not None:
            params["encoder"] = encoder
        try:
            self.router_ = cls(**params).fit(train)
        except TypeError as exc:
            raise RoutingError(f"router '{self.name}': {exc}") from None
        return self

    def knobs(self) -> list[Knob]:
        if self.spec.knob is None or self.spec.sweep is None:
            return [self.spec.default]
        if self.spec.sweep == "auto":
            grid = lambda_grid(self.router_.mean_cost_, points=self.spec.points)
            return [self.spec.default, *(float(x) for x in grid)]
        return [self.spec.default, *self.spec.sweep]

    def predict(self, test: RoutingTable, knob: Knob = None) -> Indices:
        knobs = {} if knob is None or self.spec.knob is None else {self.spec.knob: knob}
        router = self.router_
        if (
            isinstance(router, CostAwareRouter)
            and type(router)._member_scores is CostAwareRouter._member_scores  # not Gumbel's
            and set(knobs) <= {"lam"}
        ):
            # predicted quality and cost do not depend on lam: predict them once, sweep in
            # NumPy (the same argmax as CostAwareRouter._member_scores, one kNN search)
            if getattr(self, "_quality_for", None) is not test:
                vectors = router.embed(test.prompts, cache=True)
                self._quality = router.predicted_quality(vectors)
                self._cost = router.expected_cost(vectors)
                self._quality_for = test
            lam = router.cost_weight(knobs)
            return np.asarray((self._quality - lam * self._cost).argmax(axis=1), dtype=np.int64)
        if hasattr(router, "predict_vectors") and hasattr(router, "embed"):
            # embed the test prompts once (cached on disk), not once per knob value
            if getattr(self, "_vectors_for", None) is not test:
                self._vectors = router.embed(test.prompts, cache=True)
                self._vectors_for = test
            return np.asarray(router.predict_vectors(self._vectors, **knobs), dtype=np.int64)
        return np.asarray(router.predict(list(test.prompts), **knobs), dtype=np.int64)


BASELINES: Sequence[RouterSpec] = (
    RouterSpec(name="oracle"),
    RouterSpec(name="best_single"),
    RouterSpec(name="random"),
)
