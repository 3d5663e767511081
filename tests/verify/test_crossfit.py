"""The fused calibration fitted on out-of-kind claim scores, and the choice of its inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pinfactory.verify.crossfit import (
    choose_features,
    cross_fitted,
    held_out_auroc,
    out_of_kind_heads,
)
from pinfactory.verify.datasets import same_kind
from pinfactory.verify.grounding import CONTRADICTED_CAP, contradiction_rule
from pinfactory.verify.support import FEATURES, SupportHead
from pinfactory.verify.training import fit_head

_AT = {name: i for i, name in enumerate(FEATURES)}


def _head(bias: float) -> SupportHead:
    """A head that ignores its input: every claim scores sigmoid(bias)."""
    f = len(FEATURES)
    arrays = {"mean": np.zeros(f), "scale": np.ones(f), "w1": np.zeros((f, 1)),
              "b1": np.zeros(1), "w2": np.zeros(1), "b2": np.array(bias)}  # fmt: skip
    return SupportHead(arrays, FEATURES)


def test_each_dev_set_gets_a_head_trained_without_its_kind() -> None:
    rng = np.random.default_rng(0)
    sources = ["FEVER-NLI"] * 200 + ["summedits-podcast"] * 200 + ["factcheck-gpt"] * 200
    x = rng.normal(size=(600, len(FEATURES)))
    y = (x[:, 0] > 0).astype(int)
    seen: list[int] = []

    def fit(xs: np.ndarray, ys: np.ndarray) -> SupportHead:
        seen.append(len(xs))
        return fit_head(xs, ys, seed=0, hidden=4)

    sets = ["fever-heldout", "summedits-news", "summedits-sales_email", "wice-dev", "other"]
    heads = out_of_kind_heads(x, y, sources, sets, fit)
    assert heads["summedits-news"] is heads["summedits-sales_email"]  # the same pairs left out
    assert heads["other"] is not heads["fever-heldout"]
    assert sorted(seen) == [400, 400, 400, 600]  # each kind's 200 pairs out; none for "other"
    assert same_kind("summedits-news", "summedits-podcast")
    assert not same_kind("wice-dev", "FEVER-NLI") and not same_kind("other", "MNLI")


def test_cross_fitted_rows_take_the_heads_scores_and_the_checkers_caps() -> None:
    plain = np.zeros(len(FEATURES))
    contradicted = plain.copy()
    contradicted[[_AT["stem_coverage_best"], _AT["quantity_conflict"]]] = 1.0
    assert contradiction_rule(contradicted, 0.99) == "quantity"
    assert contradiction_rule(plain, 0.99) is None
    rows = [
        {"claims": 2.0, "min_logit": 5.0, "lex_min_score": 0.7},
        {"claims": 1.0, "min_logit": 5.0, "lex_min_score": 0.2},
        {"claims": 0.0},
    ]
    matrices = [np.stack([plain, contradicted]), plain[None, :], np.zeros((0, len(FEATURES)))]
    out = cross_fitted(rows, matrices, _head(2.0), claim_threshold=0.5)
    cap = math.log(CONTRADICTED_CAP / (1 - CONTRADICTED_CAP))
    assert out[0]["min_logit"] == pytest.approx(cap)  # the rule caps the head's 0.88
    assert out[0]["second_logit"] == pytest.approx(2.0, abs=1e-3)
    assert out[0]["contradicted"] == 1.0 and out[0]["flagged_share"] == 0.5
    assert out[0]["lex_min_score"] == 0.7  # the word-coverage inputs are the checker's
    assert out[1]["min_logit"] == pytest.approx(2.0, abs=1e-3)
    assert out[2] == {"claims": 0.0}


def test_the_smallest_input_set_near_the_best_held_out_auroc_is_chosen() -> None:
    rng = np.random.default_rng(1)
    rows, labels = {}, {}
    for name in ("a", "b", "c"):
        y = rng.integers(0, 2, size=200)
        signal = y + rng.normal(scale=0.8, size=200)
        rows[name] = [
            {"claims": 1.0, "min_logit": float(s), "lex_min_score": float(rng.normal())}
            for s in signal
        ]
        labels[name] = [int(v) for v in y]
    candidates = {
        "noise": ("lex_min_score",),
        "both": ("min_logit", "lex_min_score"),
        "signal": ("min_logit",),
    }
    choice = choose_features(rows, labels, candidates)
    assert choice.name == "signal" and choice.features == ("min_logit",)
    assert set(choice.held_out) == set(candidates)
    assert np.mean(list(choice.held_out["signal"].values())) > 0.75
    assert np.mean(list(held_out_auroc(rows, labels, ("lex_min_score",)).values())) < 0.6
    with pytest.raises(ValueError, match="at least two"):
        choose_features({"a": rows["a"]}, {"a": labels["a"]}, candidates)
