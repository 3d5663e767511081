"""Cascade thresholds with a guarantee: the error rate of accepted answers, bounded.

A cascade tries tiers cheapest first; after tier ``t`` (not the last) a scorer gives a
confidence and the answer is accepted when it reaches ``thresholds[t]``. With
:func:`calibrate`, the thresholds come from Learn-then-Test (Angelopoulos, Bates et al.
2021), a form of conformal risk control for a risk that is a rate: on a calibration set, for
each tier and each of 20 candidate thresholds (accepting the top 5%, 10%, ... of prompts by
score, chosen from the scores alone), the null hypothesis "accepted answers at this
threshold are wrong more than ``epsilon`` of the time" is tested with an exact binomial tail
at a Bonferroni share of ``delta``; the loosest threshold that passes is kept. Each tier
spends ``delta / (tiers - 1)`` and is calibrated on its own part of the calibration set,
among the prompts the earlier tiers pass on, so with probability at least ``1 - delta`` over
the calibration draw, every tier's accepted answers -- hence all answers accepted before the
last tier -- are wrong at most ``epsilon`` of the time on new prompts from the same
distribution. The last tier's answers are kept as they are: the bound is on what the cascade
chose to accept, not on the last member's own quality.

Arrays: ``scores`` and ``right`` are (prompts, tiers) -- the scorer's confidence in each
tier's answer and whether that answer is right (quality >= 0.5); ``cost`` the USD of each
tier's call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from pinfactory.errors import RoutingError

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
NEVER = np.inf
"""A threshold no score reaches: the tier's answers are never accepted."""


@dataclass(frozen=True)
class Outcome:
    """What a cascade with given thresholds does on a set of prompts."""

    stop: npt.NDArray[np.int64]  # the tier whose answer was kept, per prompt
    accepted_error: float  # error rate of answers accepted before the last tier (0 if none)
    accepted_share: float  # share of prompts settled before the last tier
    quality: float  # mean rightness of the kept answers
    cost: float  # mean USD per prompt, every tier tried paid


def binomial_p_value(errors: int, n: int, epsilon: float) -> float:
    """P(Binomial(n, epsilon) <= errors): small when the error rate is surely below epsilon."""
    if n == 0:
        return 1.0
    return float(stats.binom.cdf(errors, n, epsilon))


def tier_threshold(
    scores: Floats, right: Bools, epsilon: float, delta: float, levels: int = 20
) -> float:
    """The loosest threshold whose accepted answers are wrong at most ``epsilon`` of the time,
    with confidence ``1 - delta``.

    Candidates accept the top 1/``levels``, 2/``levels``, ... of the prompts by score (chosen
    from the scores alone, never the labels); each is tested at ``delta / levels``
    (Bonferroni), so with probability ``1 - delta`` none passes wrongly, and the loosest that
    passes is kept. ``NEVER`` when none does.
    """
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    errors = np.cumsum(~right[order])
    chosen = NEVER
    for level in range(1, levels + 1):
        m = round(n * level / levels)
        if m == 0:
            continue
        cut = float(sorted_scores[m - 1])
        accepted = int(np.searchsorted(-sorted_scores, -cut, side="right"))  # ties included
        if binomial_p_value(int(errors[accepted - 1]), accepted, epsilon) <= delta / levels:
            chosen = cut if chosen == NEVER else min(chosen, cut)
    return chosen


def calibrate(
    scores: Floats, right: Bools, epsilon: float, delta: float, seed: int = 0
) -> list[float]:
    """One threshold per tier but the last (see the module docstring).

    The calibration prompts are dealt (by ``seed``) into one disjoint part per
    calibrated tier; tier ``t`` is calibrated on the prompts of part ``t`` that the
    thresholds already chosen pass on to it, so that they are an independent sample of
    the prompts reaching tier ``t`` and the binomial test is exact.
    """
    if not 0 < epsilon < 1 or not 0 < delta < 1:
        raise RoutingError(f"epsilon {epsilon} and delta {delta} must be in (0, 1)")
    tiers = scores.shape[1]
    if tiers < 2:
        raise RoutingError("a cascade needs two tiers or more")
    share = delta / (tiers - 1)
    parts = np.array_split(np.random.default_rng(seed).permutation(len(scores)), tiers - 1)
    thresholds: list[float] = []
    for t, rows in enumerate(parts):
        reaching = rows[np.all(scores[rows, :t] < np.asarray(thresholds), axis=1)] if t else rows
        thresholds.append(tier_threshold(scores[reaching, t], right[reaching, t], epsilon, share))
    return thresholds


def run(
    scores: Floats,
    right: Bools,
    cost: Floats,
    thresholds: list[float],
    *,
    scored_before_call: bool = False,
) -> Outcome:
    """Replay the cascade: each prompt stops at the first tier whose score reaches its
    threshold (the last tier always stops it). It pays every tier up to there, or, when the
    scores read only the prompt (``scored_before_call``), only the tier that answers: a tier
    whose score falls short is skipped without being called."""
    n, tiers = scores.shape
    stop = np.full(n, tiers - 1, dtype=np.int64)
    open_ = np.ones(n, dtype=bool)
    for t, limit in enumerate(thresholds):
        accept = open_ & (scores[:, t] >= limit)
        stop[accept] = t
        open_ &= ~accept
    rows = np.arange(n)
    kept_right = right[rows, stop]
    early = stop < tiers - 1
    paid = cost[rows, stop] if scored_before_call else np.cumsum(cost, axis=1)[rows, stop]
    return Outcome(
        stop=stop,
        accepted_error=float((~kept_right[early]).mean()) if early.any() else 0.0,
        accepted_share=float(early.mean()),
        quality=float(kept_right.mean()),
        cost=float(paid.mean()),
    )
