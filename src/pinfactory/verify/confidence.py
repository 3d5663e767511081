"""One calibrated confidence per answer: logistic calibration of the checkers' signals.

The grounding report's answer features (claim count, weakest, second-weakest
and mean claim logit, share flagged, contradictions; see
:func:`pinfactory.verify.grounding.answer_features`) go through a logistic
regression fitted on labelled answers. The packaged coefficients and the claim
threshold were fitted by ``pinfactory verify train`` on development data only
(WiCE dev and SummEdits' held-out domains); ``bench/grounding_eval.py`` reports
the expected calibration error on data they never saw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = (
    "claims_log",
    "min_logit",
    "second_logit",
    "mean_logit",
    "flagged_share",
    "contradicted",
)
FUSED_FEATURES = (
    *FEATURES,
    "lex_min_score",
    "lex_mean_score",
    "lex_min_coverage",
    "lex_mean_similarity",
    "lex_contradicted_share",
    "lex_unsupported_share",
    "overlap",
)
"""The answer calibration's inputs: the trained head's claim scores (:data:`FEATURES`),
the word-coverage checker's (``lex_*``) and the plain word overlap."""
CROSS_FUSED_FEATURES = (
    *(f for f in FUSED_FEATURES if f != "flagged_share"),
    "ce_min_logit",
    "ce_second_logit",
    "ce_mean_logit",
)
""":data:`FUSED_FEATURES` and the fine-tuned cross-encoder's weakest, second-weakest and
mean claim logits (without the share flagged, which depends on the claim threshold
being fitted alongside)."""
FUSION_CANDIDATES: dict[str, tuple[str, ...]] = {
    "weakest": ("min_logit", "lex_min_score"),
    "weakest+length": ("min_logit", "lex_min_score", "claims_log"),
    "weakest+similarity": ("min_logit", "lex_min_score", "lex_mean_similarity"),
    "weakest+mean": ("min_logit", "mean_logit", "lex_min_score", "lex_mean_score"),
    "head": FEATURES,
    "lexical": tuple(f for f in FUSED_FEATURES if f.startswith("lex_") or f == "overlap"),
    "all": FUSED_FEATURES,
}
"""The calibration's candidate inputs; ``pinfactory verify train`` keeps the smallest whose
leave-one-set-out AUROC on development data is near the best
(:func:`pinfactory.verify.crossfit.choose_features`). ``weakest``: the trained head's and
the word-coverage checker's weakest claim (``+length``: and the claim count);
``all``: :data:`FUSED_FEATURES`."""
DEFAULT_CLAIM_THRESHOLD = 0.5
DEFAULT_ANSWER_THRESHOLD = 0.5


class Calibrator:
    """Logistic calibration: features -> probability that the answer is grounded."""

    def __init__(
        self,
        features: Sequence[str] = FUSED_FEATURES,
        c: float = 1.0,
        claim_threshold: float = DEFAULT_CLAIM_THRESHOLD,
        answer_threshold: float = DEFAULT_ANSWER_THRESHOLD,
        cross_threshold: float = DEFAULT_CLAIM_THRESHOLD,
    ) -> None:
        self.features = tuple(features)
        self.c = c
        self.claim_threshold = claim_threshold
        self.answer_threshold = answer_threshold
        self.cross_threshold = cross_threshold
        """The cross-encoder's P(supported) at which a claim counts as supported."""
        self.meta: dict[str, Any] = {}

    def _matrix(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        return np.array([[float(r.get(f, 0.0)) for f in self.features] for r in rows])

    def fit(self, rows: Sequence[Mapping[str, float]], labels: Sequence[int]) -> Calibrator:
        # scikit-learn (seconds to import) loads only when a model is fitted
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=self.c, max_iter=1000).fit(self._matrix(rows), labels)
        self.coef_ = [float(v) for v in model.coef_[0]]
        self.intercept_ = float(model.intercept_[0])
        return self

    def predict(self, row: Mapping[str, float]) -> float:
        """Probability in [0, 1]; an answer with no claims to check, or a row with none of
        the calibration's inputs (claims checked against no evidence), gets 0.5: nothing
        was measured."""
        if not row or row.get("claims", 1.0) == 0 or not any(f in row for f in self.features):
            return 0.5
        z = self.intercept_ + sum(
            w * float(row.get(f, 0.0)) for w, f in zip(self.coef_, self.features, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "coef": self.coef_,
            "intercept": self.intercept_,
            "claim_threshold": self.claim_threshold,
            "answer_threshold": self.answer_threshold,
            "cross_threshold": self.cross_threshold,
            **self.meta,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path | None = None) -> Calibrator:
        """The packaged calibration unless ``path`` names another."""
        source = path or Path(str(resources.files("pinfactory") / "data" / "calibration.json"))
        data = json.loads(source.read_text())
        calibrator = cls(
            data["features"],
            claim_threshold=float(data.get("claim_threshold", DEFAULT_CLAIM_THRESHOLD)),
            answer_threshold=float(data.get("answer_threshold", DEFAULT_ANSWER_THRESHOLD)),
            cross_threshold=float(data.get("cross_threshold", DEFAULT_CLAIM_THRESHOLD)),
        )
        calibrator.meta = {
            k: v
            for k, v in data.items()
            if k
            not in (
                "features",
                "coef",
                "intercept",
                "claim_threshold",
                "answer_threshold",
                "cross_threshold",
            )
        }
        calibrator.coef_ = [float(v) for v in data["coef"]]
        calibrator.intercept_ = float(data["intercept"])
        return calibrator


def expected_calibration_error(
    probabilities: Sequence[float], labels: Sequence[int], bins: int = 10
) -> float:
    """ECE: the bin-weighted gap between confidence and accuracy (equal-width bins)."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            error += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(error)
