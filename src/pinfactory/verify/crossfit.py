"""The fused calibration as it will meet data of a kind nobody trained on.

The head is trained on FEVER-NLI, MNLI, Factcheck-GPT and SummEdits; three of the five
development sets are of those kinds (held-out FEVER and MNLI pairs, held-out SummEdits
domains), so on them the head scores better than it will on a new kind of text, and a
calibration fitted on them trusts it too much (measured: on SummaC and HaluEval the fused
score fell below the word-coverage checker it fuses). Here each development set's claim
scores come instead from a head trained *without* its kind
(:data:`~pinfactory.verify.datasets.DEV_KINDS`), out-of-kind the way the shipped head is
on data it never saw; the calibration and its inputs are chosen on those.

- :func:`out_of_kind_heads`: one head per kind, fitted without that kind's training pairs;
- :func:`cross_fitted`: a development set's answer features with that head's claim scores
  (rule contradictions capped as the checker caps them; the lexical inputs unchanged);
- :func:`choose_features`: among :data:`~pinfactory.verify.confidence.FUSION_CANDIDATES`,
  the smallest input set whose mean leave-one-set-out AUROC is within
  :data:`TOLERANCE` of the best (fitted without the set it scores).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pinfactory.verify.confidence import FUSION_CANDIDATES, Calibrator
from pinfactory.verify.datasets import same_kind
from pinfactory.verify.grounding import CONTRADICTED_CAP, answer_features, contradiction_rule
from pinfactory.verify.report import ClaimLabel
from pinfactory.verify.support import SupportHead

TOLERANCE = 0.005
"""Mean held-out AUROC a smaller input set may give up against the best: five held-out
sets cannot tell smaller differences apart."""
Rows = Mapping[str, Sequence[Mapping[str, float]]]
"""Per development set, per answer: the fused features."""


@dataclass(frozen=True, slots=True)
class FeatureChoice:
    """The chosen candidate (``name``, ``features``) and every candidate's
    leave-one-set-out AUROC per development set (``held_out[candidate][set]``)."""

    name: str
    features: tuple[str, ...]
    held_out: dict[str, dict[str, float]]


def out_of_kind_heads(
    x: np.ndarray,
    y: np.ndarray,
    sources: Sequence[str],
    dev_sets: Sequence[str],
    fit: Callable[[np.ndarray, np.ndarray], SupportHead],
) -> dict[str, SupportHead]:
    """Per development set, a head ``fit`` on the training pairs (``x`` ``[n, F]``, ``y``
    ``[n]``, ``sources`` ``[n]``) not of its kind; sets that exclude the same pairs share
    one head."""
    heads: dict[str, SupportHead] = {}
    by_mask: dict[bytes, SupportHead] = {}
    for name in dev_sets:
        keep = np.array([not same_kind(name, s) for s in sources])
        key = np.packbits(keep).tobytes()
        if key not in by_mask:
            by_mask[key] = fit(x[keep], y[keep])
        heads[name] = by_mask[key]
    return heads


def cross_fitted(
    rows: Sequence[Mapping[str, float]],
    matrices: Sequence[np.ndarray],
    head: SupportHead,
    claim_threshold: float,
) -> list[dict[str, float]]:
    """``rows`` (the checker's fused features, one per answer) with the head features
    (:func:`~pinfactory.verify.grounding.answer_features`) recomputed from ``head``'s
    scores of each answer's claim ``matrices`` (``[claims, F]``, the checker's order).
    Answers with nothing checked keep their row."""
    out = []
    for row, matrix in zip(rows, matrices, strict=True):
        fused = dict(row)
        if len(matrix) and "min_logit" in row:
            scores, labels = [], []
            for features, p in zip(matrix, head.predict(matrix), strict=True):
                label: ClaimLabel = "supported" if p >= claim_threshold else "unsupported"
                if contradiction_rule(features, float(p)) is not None:
                    label, p = "contradicted", min(float(p), CONTRADICTED_CAP)
                scores.append(float(p))
                labels.append(label)
            fused.update(answer_features(scores, labels))
        out.append(fused)
    return out


def held_out_auroc(
    rows: Rows, labels: Mapping[str, Sequence[int]], features: Sequence[str]
) -> dict[str, float]:
    """Per set: the AUROC of a calibration over ``features`` fitted on every other set."""
    # scikit-learn (seconds to import) loads only when a model is fitted
    from sklearn.metrics import roc_auc_score

    out = {}
    for name in rows:
        others = [n for n in rows if n != name]
        calibrator = Calibrator(features).fit(
            [r for n in others for r in rows[n]], [v for n in others for v in labels[n]]
        )
        scores = [calibrator.predict(r) for r in rows[name]]
        out[name] = round(float(roc_auc_score(labels[name], scores)), 4)
    return out


def choose_features(
    rows: Rows,
    labels: Mapping[str, Sequence[int]],
    candidates: Mapping[str, Sequence[str]] = FUSION_CANDIDATES,
    tolerance: float = TOLERANCE,
) -> FeatureChoice:
    """The smallest candidate within ``tolerance`` of the best mean leave-one-set-out
    AUROC (ties: the first named); raises ValueError with fewer than two sets."""
    if len(rows) < 2:
        raise ValueError("choosing the fused inputs needs at least two development sets")
    held = {name: held_out_auroc(rows, labels, f) for name, f in candidates.items()}
    means = {name: float(np.mean(list(v.values()))) for name, v in held.items()}
    best = max(means.values())
    eligible = [n for n in candidates if means[n] >= best - tolerance]
    name = min(eligible, key=lambda n: len(candidates[n]))
    return FeatureChoice(name, tuple(candidates[name]), held)
