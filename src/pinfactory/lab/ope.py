"""Off-policy evaluation: a candidate router's value from decisions another policy logged.

A log holds, per decision, the prompt, the member the live policy chose, the
probability it had of choosing it (``propensity``) and the outcome's reward (quality
minus ``lam`` x cost). For a candidate policy that picks ``pi(x)`` (deterministic):

- **IPS** (inverse propensity): ``mean(1[pi(x) = a] / p * r)``; unbiased when every
  propensity is right and positive, high variance when they are small.
- **DR** (doubly robust; Dudik et al. 2011): ``mean(q(x, pi(x)) + 1[pi(x) = a] / p *
  (r - q(x, a)))`` with a reward model ``q`` fitted by cross-fitting (each fold's ``q``
  trained on the other folds), so ``q``'s errors are corrected by the weighted
  residuals and its fit to the same rows is not reused.

Intervals are 95% normal intervals over the per-decision terms (the estimates are
means of independent terms). :func:`compare` says whether the candidate beats the live
policy: the interval of the paired difference (candidate term minus the live reward)
lies above 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pinfactory.errors import RoutingError

Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int64]
Z95 = 1.959964


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    @classmethod
    def of(cls, terms: Floats) -> Estimate:
        mean = float(terms.mean())
        spread = float(terms.std(ddof=1)) if len(terms) > 1 else 0.0
        half = Z95 * spread / float(np.sqrt(len(terms)))
        return cls(mean, mean - half, mean + half)


@dataclass(frozen=True)
class Comparison:
    live: Estimate
    ips: Estimate
    dr: Estimate
    gain: Estimate  # DR minus the live policy's observed reward, paired
    beats_live: bool


def _check(chosen: Indices, propensity: Floats, reward: Floats, target: Indices) -> None:
    n = len(chosen)
    if not (len(propensity) == len(reward) == len(target) == n) or n == 0:
        raise RoutingError("a log needs one chosen member, propensity and reward per decision")
    if (propensity <= 0).any() or (propensity > 1).any():
        raise RoutingError("propensities must be in (0, 1]")


def ips_terms(chosen: Indices, propensity: Floats, reward: Floats, target: Indices) -> Floats:
    _check(chosen, propensity, reward, target)
    terms: Floats = (chosen == target) / propensity * reward
    return terms


def dr_terms(
    chosen: Indices,
    propensity: Floats,
    reward: Floats,
    target: Indices,
    predicted: Floats,
) -> Floats:
    """``predicted`` is the (n, members) reward model, fitted out of fold."""
    _check(chosen, propensity, reward, target)
    rows = np.arange(len(chosen))
    direct = predicted[rows, target]
    correction = (chosen == target) / propensity * (reward - predicted[rows, chosen])
    terms: Floats = direct + correction
    return terms


def cross_fitted_rewards(
    vectors: Floats, chosen: Indices, reward: Floats, members: int, folds: int = 5, seed: int = 0
) -> Floats:
    """(n, members) reward predictions, each row's from ridge models fitted on other folds,
    one per member on the decisions where that member was chosen (its mean where too few)."""
    # scikit-learn (seconds to import) loads only when a model is fitted
    from sklearn.linear_model import Ridge

    n = len(chosen)
    fold = np.random.default_rng(seed).integers(0, folds, size=n)
    out = np.zeros((n, members))
    for k in range(folds):
        held, train = fold == k, fold != k
        for m in range(members):
            mine = train & (chosen == m)
            if mine.sum() >= 10:
                model = Ridge(alpha=1.0).fit(vectors[mine], reward[mine])
                out[held, m] = model.predict(vectors[held])
            else:
                pool = reward[mine] if mine.any() else reward[train]
                out[held, m] = float(pool.mean()) if len(pool) else 0.0
    return out


def compare(
    chosen: Indices,
    propensity: Floats,
    reward: Floats,
    target: Indices,
    predicted: Floats,
) -> Comparison:
    """IPS and DR estimates of the candidate ``target`` against the live policy's reward."""
    ips = ips_terms(chosen, propensity, reward, target)
    dr = dr_terms(chosen, propensity, reward, target, predicted)
    gain = Estimate.of(dr - reward)
    return Comparison(
        live=Estimate.of(reward),
        ips=Estimate.of(ips),
        dr=Estimate.of(dr),
        gain=gain,
        beats_live=bool(gain.low > 0),
    )


@dataclass(frozen=True)
class DecisionLog:
    """Logged decisions: the prompt, the member chosen, its propensity, the outcome."""

    prompts: list[str]
    chosen: list[str]
    propensity: Floats
    quality: Floats
    cost: Floats

    def rewards(self, lam: float) -> Floats:
        rewards: Floats = self.quality - lam * self.cost
        return rewards


DECISION_COLUMNS = ("prompt", "member", "propensity", "quality", "cost_usd")


def read_decisions(path: str | Path) -> DecisionLog:
    """A decision log (CSV or JSONL) with the columns of :data:`DECISION_COLUMNS`."""
    # pandas (about 1 s to import) loads only to write a report table
    import pandas as pd

    source = Path(path)
    try:
        if source.suffix.lower() in (".jsonl", ".ndjson"):
            frame = pd.read_json(source, lines=True)
        else:
            frame = pd.read_csv(source)
    except (OSError, ValueError) as exc:
        raise RoutingError(f"{source}: cannot read a decision log: {exc}") from None
    missing = [c for c in DECISION_COLUMNS if c not in frame.columns]
    if missing:
        raise RoutingError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"required: {', '.join(DECISION_COLUMNS)}"
        )
    numbers = {}
    for column in ("propensity", "quality", "cost_usd"):
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise RoutingError(f"{source}, row {int(bad[0]) + 1}: {column} is not a number")
        numbers[column] = values
    bad = np.flatnonzero((numbers["propensity"] <= 0) | (numbers["propensity"] > 1))
    if len(bad):
        raise RoutingError(f"{source}, row {int(bad[0]) + 1}: propensity must be in (0, 1]")
    return DecisionLog(
        prompts=[str(p) for p in frame["prompt"]],
        chosen=[str(m) for m in frame["member"]],
        propensity=numbers["propensity"],
        quality=numbers["quality"],
        cost=numbers["cost_usd"],
    )
