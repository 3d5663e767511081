"""Each metric on an example small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pinfactory.lab import metrics
from pinfactory.routing.table import RoutingTable


def table() -> RoutingTable:
    # members: cheap (0.1 USD), dear (1.0 USD); four prompts
    quality = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    cost = np.array([[0.1, 1.0]] * 4)
    return RoutingTable(["a", "b", "c", "d"], ["p"] * 4, ["cheap", "dear"], quality, cost)


def test_accuracy_counts_any_member_reaching_the_best_quality() -> None:
    t = table()
    # oracle: cheap, dear, dear, cheap; choosing dear on prompt a is still right (tie at 1.0)
    assert metrics.accuracy(t, np.array([1, 1, 1, 0])) == 1.0
    assert metrics.accuracy(t, np.array([0, 0, 1, 1])) == 0.5


def test_evaluate_means_totals_and_shares() -> None:
    outcome = metrics.evaluate(table(), np.array([0, 1, 0, 0]))
    assert outcome.quality == pytest.approx(3 / 4)
    assert outcome.total_cost_usd == pytest.approx(1.3)
    assert outcome.cost_usd == pytest.approx(1.3 / 4)
    assert outcome.shares == (0.75, 0.25)


def test_choices_must_index_members() -> None:
    with pytest.raises(ValueError, match="index"):
        metrics.evaluate(table(), np.array([0, 1, 2, 0]))


def test_hull_drops_points_below_the_chord_and_after_the_peak() -> None:
    # (2, 0.55) lies below the chord from (1, 0.5) to (3, 0.9); (4, 0.8) falls after the peak
    hull = metrics.hull([1, 2, 3, 4], [0.5, 0.55, 0.9, 0.8])
    assert hull.tolist() == [[1.0, 0.5], [3.0, 0.9]]


def test_aiq_is_the_normalised_area_under_the_hull() -> None:
    # hull (1, .5) -> (3, .9), flat to 5: area = 2 * 0.7 + 2 * 0.9 = 3.2 over a range of 4
    assert metrics.aiq([1, 3], [0.5, 0.9], 1, 5) == pytest.approx(0.8)
    # a router whose cheapest point costs 3 scores 0 on [1, 3): area 2 * 0.9 = 1.8 over 4
    assert metrics.aiq([3, 5], [0.9, 0.9], 1, 5) == pytest.approx(0.45)


def test_cost_to_reach_interpolates_on_the_hull_and_savings_follow() -> None:
    # from (1, .5) to (3, .9): quality .7 is reached halfway, at cost 2
    assert metrics.cost_to_reach([1, 3], [0.5, 0.9], 0.7) == pytest.approx(2.0)
    assert metrics.cost_to_reach([1, 3], [0.5, 0.9], 0.95) is None
    # a single member costing 4 at quality .7: 50% saved
    assert metrics.savings([1, 3], [0.5, 0.9], 4.0, 0.7) == pytest.approx(0.5)


def test_pgr_apgr_and_cpt_as_routellm_defines_them() -> None:
    assert metrics.pgr(0.7, 0.6, 0.8) == pytest.approx(0.5)
    # random routing recovers the gap linearly: APGR 0.5, CPT(50%) = 50%
    shares = [0.25, 0.5, 0.75]
    random_quality = [0.6 + 0.2 * s for s in shares]
    assert metrics.apgr(shares, random_quality, 0.6, 0.8) == pytest.approx(0.5)
    assert metrics.cpt(shares, random_quality, 0.6, 0.8, 0.5) == pytest.approx(0.5)
    # a router reaching PGR 1 at 25% strong calls: area .125 + .75 = .875, CPT(80%) = 25%
    assert metrics.apgr([0.25], [0.8], 0.6, 0.8) == pytest.approx(0.875)
    assert metrics.cpt([0.25], [0.8], 0.6, 0.8, 0.8) == pytest.approx(0.25)
