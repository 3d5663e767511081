"""Cascades: try the cheapest tier first, escalate while the answer looks weak.

After each tier answers, a :class:`Scorer` gives a confidence in [0, 1];
the cascade accepts the answer when the confidence reaches that tier's
threshold and otherwise escalates to the next tier. The last tier's answer
is always accepted. In a gateway the tiers are one member made of members, a
:class:`~pinfactory.members.composite.CascadeMember` named ``cascade``: the
router's decisions name it, the pipeline calls it like any member, spend limits
reserve every tier it may call, and it books each tier it tries. Thresholds
are set by hand or calibrated on labelled data (:meth:`Cascade.calibrate`) to
meet a quality target or a budget.

```yaml
routing:
  kind: cascade
  fallback: local
  tiers: [local, tier:frontier]
  scorer: answered            # verifier | acceptance (+ scorer_path) | 'module:callable'
  thresholds: [0.5]           # one per tier but the last
```
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import RoutingError, TeamFileError
from pinfactory.members.base import Member
from pinfactory.members.composite import CascadeMember
from pinfactory.members.composite import Scorer as Scorer
from pinfactory.members.composite import answered as answered
from pinfactory.plugins import PluginNotFound, import_object
from pinfactory.request import Request
from pinfactory.routing.acceptance import AcceptanceModel, verifier_scorer
from pinfactory.routing.base import (
    Decision,
    MemberTable,
    member_cost,
    member_tier,
    resolve_member,
)
from pinfactory.routing.table import RoutingTable
from pinfactory.tiers import RouterContext

Floats = npt.NDArray[np.float64]
COMPOSITE = "cascade"
"""The name of the member a cascade router's tiers make (see the module docstring)."""


def _verifier() -> Scorer:

    return verifier_scorer()


SCORERS: dict[str, Callable[[], Scorer]] = {"answered": lambda: answered, "verifier": _verifier}


def scorer_named(name: str, path: Path | None = None) -> Scorer:
    """A registered scorer, a saved acceptance model, or any importable ``module:callable``."""
    if name == "acceptance":
        if path is None:
            raise TeamFileError("scorer 'acceptance' needs scorer_path: the saved model file")
        try:
            return AcceptanceModel.load(path)
        except RoutingError as exc:
            raise TeamFileError(exc.message) from exc
    if name in SCORERS:
        return SCORERS[name]()
    if ":" in name:
        try:
            found: Any = import_object(name)
        except PluginNotFound as exc:
            raise TeamFileError(f"scorer {exc}") from exc
        if callable(found):
            return found  # type: ignore[no-any-return]
    allowed = ", ".join(sorted(SCORERS))
    raise TeamFileError(
        f"unknown scorer '{name}'; allowed: {allowed}, acceptance or 'module:callable'"
    )


def out_of_fold_scores(
    table: RoutingTable,
    fit_and_score: Callable[[RoutingTable, RoutingTable], Floats],
    *,
    folds: int = 5,
    seed: int = 0,
) -> Floats:
    """Every row scored by a scorer trained without it.

    ``fit_and_score(train, held_out)`` trains a scorer on ``train`` and
    returns its (rows, tiers) scores for ``held_out``; each of ``folds``
    folds is held out once.
    """
    fold_of = np.random.default_rng(seed).permutation(len(table)) % folds
    scores = np.zeros(table.quality.shape)
    for fold in range(folds):
        inside, outside = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        scores[outside] = fit_and_score(table.subset(inside), table.subset(outside))
    return scores


class CascadeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = "cascade"
    fallback: str
    tiers: list[str] = Field(min_length=1, description="members or 'tier:NAME', cheapest first")
    scorer: str = "answered"
    scorer_path: str | None = Field(default=None, description="acceptance model file")
    threshold: float = Field(default=0.5, ge=0, le=1)
    thresholds: list[float] | None = None


class Cascade:
    """Ordered tiers with an accept-or-escalate check after each."""

    kind = "cascade"

    def __init__(
        self,
        tiers: Sequence[str],
        scorer: Scorer,
        *,
        fallback: str | None = None,
        threshold: float = 0.5,
        thresholds: Sequence[float] | None = None,
        members: MemberTable | None = None,
        scorer_name: str = "scorer",
    ) -> None:
        self.tiers = list(tiers)
        self.scorer = scorer
        self.fallback = fallback
        self.threshold = threshold
        self.thresholds = list(thresholds) if thresholds is not None else None
        self.members = members or {}
        self.scorer_name = scorer_name
        if self.thresholds is not None and len(self.thresholds) != len(self.tiers) - 1:
            raise RoutingError(
                f"cascade: {len(self.tiers)} tiers need {len(self.tiers) - 1} thresholds, "
                f"got {len(self.thresholds)}"
            )

    # -- thresholds -------------------------------------------------------------

    def limits(self) -> list[float]:
        """The acceptance threshold of every tier but the last."""
        fitted = getattr(self, "thresholds_", None)
        if fitted is not None:
            return list(fitted)
        if self.thresholds is not None:
            return list(self.thresholds)
        return [self.threshold] * (len(self.tiers) - 1)

    @staticmethod
    def simulate(
        table: RoutingTable, scores: Floats, thresholds: Sequence[float]
    ) -> tuple[float, float, npt.NDArray[np.int64]]:
        """Mean quality and cost of a cascade over ``table``'s members in order.

        ``scores[i, t]`` is the scorer's confidence in tier ``t``'s answer to
        prompt ``i``. Returns the quality, the cost (every tier tried is
        paid) and the tier each prompt stopped at.
        """
        n, tiers = table.quality.shape
        accept = np.ones((n, tiers), dtype=bool)
        accept[:, :-1] = scores[:, :-1] >= np.asarray(thresholds)[None, :]
        stop = accept.argmax(axis=1)
        rows = np.arange(n)
        paid = np.cumsum(table.cost, axis=1)[rows, stop]
        return float(table.quality[rows, stop].mean()), float(paid.mean()), stop

    def calibrate(
        self,
        table: RoutingTable,
        scores: Floats,
        *,
        quality_target: float | None = None,
        budget_usd: float | None = None,
        grid: int = 21,
        margin: float = 0.0,
    ) -> Self:
        """Set ``thresholds_`` from a table whose members are the tiers in order.

        With ``quality_target``: the cheapest thresholds whose quality meets
        it plus ``margin`` (the most accurate ones if none does). With
        ``budget_usd``: the most accurate thresholds within the budget (the
        cheapest if none is). Scores should be out of sample (see
        :func:`out_of_fold_scores`): a scorer's own training prompts flatter it.
        """
        if list(table.members) != [t.removeprefix("tier:") for t in self.tiers]:
            raise RoutingError(
                f"cascade calibration: table members {table.members} are not the tiers "
                f"{self.tiers} in order"
            )
        if quality_target is None and budget_usd is None:
            raise RoutingError("cascade calibration needs quality_target or budget_usd")
        candidates = [
            np.unique(np.concatenate([np.quantile(scores[:, t], np.linspace(0, 1, grid)), [1.01]]))
            for t in range(len(self.tiers) - 1)
        ]
        results = []
        for combo in itertools.product(*candidates):
            quality, cost, _ = self.simulate(table, scores, combo)
            results.append((quality, cost, combo))
        if quality_target is not None:
            meeting = [r for r in results if r[0] >= quality_target + margin]
            best = min(meeting, key=lambda r: r[1]) if meeting else max(results)
        else:
            within = [r for r in results if r[1] <= (budget_usd or 0.0)]
            best = max(within) if within else min(results, key=lambda r: r[1])
        self.thresholds_ = [float(x) for x in best[2]]
        self.calibrated_ = {"quality": best[0], "cost_usd": best[1], "margin": margin}
        return self

    def calibrate_cv(
        self,
        table: RoutingTable,
        scores: Floats,
        *,
        quality_target: float,
        folds: int = 5,
        margins: Sequence[float] = tuple(np.round(np.arange(0.0, 0.081, 0.005), 3)),
        seed: int = 0,
    ) -> Self:
        """Calibrate to ``quality_target`` with a safety margin chosen by cross-validation.

        For each margin, thresholds calibrated on all folds but one (at
        target + margin) are replayed on the fold left out; the margin is the
        smallest whose pooled held-out quality meets the target. The final
        thresholds are calibrated on the whole table at target + that margin.
        """
        fold_of = np.random.default_rng(seed).permutation(len(table)) % folds
        chosen = float(margins[-1])
        for margin in margins:
            achieved = np.empty(len(table))
            for fold in range(folds):
                inside, outside = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
                self.calibrate(
                    table.subset(inside),
                    scores[inside],
                    quality_target=quality_target,
                    margin=float(margin),
                )
                held = table.subset(outside)
                _, _, stop = self.simulate(held, scores[outside], self.thresholds_)
                achieved[outside] = held.quality[np.arange(len(held)), stop]
            if achieved.mean() >= quality_target:
                chosen = float(margin)
                break
        return self.calibrate(table, scores, quality_target=quality_target, margin=chosen)

    # -- answering --------------------------------------------------------------

    def plan(self) -> list[str]:
        """The enabled members to try, cheapest tier first."""
        chosen: list[str] = []
        for tier in self.tiers:
            member = resolve_member(self.members, tier)
            if member is not None and member not in chosen:
                chosen.append(member)
        return chosen

    def composites(self) -> list[Member]:
        """The tiers as one member (when there are two or more), for the pipeline to call."""
        plan = self.plan()
        if len(plan) < 2:
            return []
        limits = self.limits()[: len(plan) - 1]
        limits += [limits[-1]] * (len(plan) - 1 - len(limits))
        made = CascadeMember.of(
            COMPOSITE, plan, self.scorer, scorer_name=self.scorer_name, thresholds=limits
        )
        return [made]

    def decide(self, request: Request) -> Decision:  # noqa: ARG002 (the plan is fixed)
        plan = self.plan()
        if not plan:
            member = self.fallback or self.tiers[0]
            return Decision(
                member=member,
                reason=f"cascade: no tier is enabled; fallback '{member}'",
                router=self.kind,
                scores={member: 1.0},
                confidence=0.5,
                estimated_cost_usd=member_cost(self.members, member),
                tier=member_tier(self.members, member),
                fallback=True,
            )
        limits = ", ".join(f"{x:.2f}" for x in self.limits()[: len(plan) - 1])
        reason = f"cascade {' -> '.join(plan)}: start at '{plan[0]}'"
        if len(plan) == 1:
            return Decision(
                member=plan[0],
                reason=reason,
                router=self.kind,
                scores={plan[0]: 1.0},
                confidence=0.5,
                estimated_cost_usd=member_cost(self.members, plan[0]),
                tier=member_tier(self.members, plan[0]),
            )
        reason += f"; escalate while {self.scorer_name} < {limits}"
        return Decision(
            member=COMPOSITE,
            reason=reason,
            router=self.kind,
            scores={m: float(len(plan) - i) for i, m in enumerate(plan)},
            confidence=0.5,
            estimated_cost_usd=member_cost(self.members, plan[0]),  # where it starts
            start=plan[0],
        )

    @classmethod
    def from_config(cls, config: dict[str, Any], context: RouterContext) -> Cascade:
        parsed = CascadeConfig.model_validate(config)
        if COMPOSITE in context.declared:
            raise TeamFileError(
                f"a cascade router names its tiers' member '{COMPOSITE}': rename the member "
                f"called '{COMPOSITE}'"
            )
        for tier in parsed.tiers:
            if context.unknown(tier):
                raise TeamFileError(
                    f"cascade tier '{tier}' is not a member; members: {context.allowed()}"
                )
        scorer_path = None if parsed.scorer_path is None else context.path(parsed.scorer_path)
        return cls(
            parsed.tiers,
            scorer_named(parsed.scorer, scorer_path),
            fallback=parsed.fallback,
            threshold=parsed.threshold,
            thresholds=parsed.thresholds,
            members=dict(context.members),
            scorer_name=parsed.scorer,
        )
