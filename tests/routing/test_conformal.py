"""Conformal cascade thresholds: the bound on accepted answers holds over calibration draws."""

from __future__ import annotations

import numpy as np
import pytest

from pinfactory.errors import RoutingError
from pinfactory.routing import conformal


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two tiers: the cheap one right with probability equal to its score; the dear one always."""
    scores = np.column_stack([rng.random(n), np.ones(n)])
    right = np.column_stack([rng.random(n) < scores[:, 0], np.ones(n, dtype=bool)])
    cost = np.tile([1.0, 10.0], (n, 1))
    return scores, right, cost


def test_the_bound_holds_over_random_calibration_sets() -> None:
    rng = np.random.default_rng(0)
    epsilon, delta = 0.15, 0.1
    test_scores, test_right, test_cost = _draw(rng, 50_000)
    violations = []
    for draw in range(100):
        scores, right, _ = _draw(rng, 2000)
        limits = conformal.calibrate(scores, right, epsilon, delta, seed=draw)
        out = conformal.run(test_scores, test_right, test_cost, limits)
        violations.append(out.accepted_error > epsilon)
    assert np.mean(violations) <= delta  # the guarantee, checked
    # and it is not vacuous: the cheap tier takes a real share at a real saving
    assert out.accepted_share > 0.05 and out.cost < 10.5


def test_a_stricter_bound_accepts_less_and_the_replay_pays_every_tier() -> None:
    rng = np.random.default_rng(1)
    scores, right, cost = _draw(rng, 2000)
    loose = conformal.calibrate(scores, right, 0.2, 0.1)
    strict = conformal.calibrate(scores, right, 0.05, 0.1)
    assert strict[0] >= loose[0]
    out = conformal.run(scores, right, cost, [0.5])
    early = scores[:, 0] >= 0.5
    assert out.accepted_share == pytest.approx(early.mean())
    assert out.cost == pytest.approx(1.0 * early.mean() + 11.0 * (1 - early.mean()))
    assert conformal.run(scores, right, cost, [conformal.NEVER]).accepted_share == 0.0


def test_bad_parameters_are_refused() -> None:
    scores, right, _ = _draw(np.random.default_rng(2), 10)
    with pytest.raises(RoutingError, match="epsilon"):
        conformal.calibrate(scores, right, 0.0, 0.1)
    with pytest.raises(RoutingError, match="two tiers"):
        conformal.calibrate(scores[:, :1], right[:, :1], 0.1, 0.1)
