"""The bandit router learns online, records propensities and keeps exploration in budget."""

from __future__ import annotations

import numpy as np
import pytest

from pinfactory.routing.bandit import LinearBandit


def test_it_learns_which_member_suits_which_prompt() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.normal(size=(n, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    quality = np.column_stack([x[:, 0] > 0, x[:, 0] <= 0]).astype(float)  # one right member each
    bandit = LinearBandit(members=["a", "b"], input_dims=16, dims=16, epsilon=0.05, seed=0)
    got = np.zeros(n)
    for i in range(n):
        choice = bandit.choose(x[i])
        got[i] = quality[i, choice.member]
        bandit.update(x[i], choice.member, quality[i, choice.member], 0.0)
    best_fixed = quality.mean(axis=0).max()
    assert got[-1000:].mean() > best_fixed + 0.2  # far above any fixed member (about 0.5)


def test_propensities_and_the_exploration_budget_per_unit() -> None:
    bandit = LinearBandit(
        members=["a", "b", "c", "d"], input_dims=4, epsilon=0.5, explore_share=0.1, seed=1
    )
    rng = np.random.default_rng(1)
    explored = 0
    for _ in range(2000):
        choice = bandit.choose(rng.normal(size=4), unit="sales")
        explored += choice.explored
        if choice.explored and choice.propensity < 0.5:
            assert choice.propensity == pytest.approx(0.5 / 4)
        assert 0 < choice.propensity <= 1
    assert explored / 2000 <= 0.1 + 1e-9  # the unit's bound, though epsilon is 0.5
    assert bandit.budgets["sales"].decisions == 2000
    other = bandit.choose(rng.normal(size=4), unit="support")  # another unit, its own budget
    assert bandit.budgets["support"].decisions == 1 and other.propensity > 0


def test_the_state_moves_between_processes() -> None:
    rng = np.random.default_rng(2)
    one = LinearBandit(members=["a", "b"], input_dims=8, seed=3)
    for _ in range(50):
        v = rng.normal(size=8)
        one.update(v, int(rng.integers(2)), float(rng.random()), 0.001)
    two = LinearBandit(members=["a", "b"], input_dims=8, seed=3)
    two.load_state(one.state())
    probe = rng.normal(size=(5, 8))
    np.testing.assert_allclose(one.estimates(probe)[0], two.estimates(probe)[0])
