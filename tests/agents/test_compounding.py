"""The composition fit on chains whose behaviour is known."""

from __future__ import annotations

import random

import pytest

from pinfactory.agents.compounding import (
    Chain,
    ChainStep,
    chain_rate,
    fit_composition,
    independent_rate,
    step_rates,
)

OK, BAD = ChainStep("fine", 1, 0), ChainStep("made up", 1, 1)


def simulate(
    n: int, length: int, p: float, *, after_clean: float, keep: float, seed: int
) -> list[Chain]:
    """Chains whose isolated step fails at ``p``; in the chain a clean input fails at
    ``after_clean`` and an error survives the next step with probability ``keep``."""
    rng = random.Random(seed)
    chains = []
    for _ in range(n):
        steps = [BAD if rng.random() < p else OK]
        for _ in range(length - 1):
            if steps[-1].failed:
                steps.append(BAD if rng.random() < keep else OK)
            else:
                steps.append(BAD if rng.random() < after_clean else OK)
        chains.append(Chain(tuple(steps), False, BAD if rng.random() < p else OK))
    return chains


def test_independent_errors_that_survive() -> None:
    chains = simulate(3000, 4, 0.15, after_clean=0.15, keep=1.0, seed=1)
    fit = fit_composition(chains, resamples=100)
    assert fit.verdict == "independent"
    assert fit.k == pytest.approx(1.0, abs=0.1)
    assert fit.observed[4] == pytest.approx(independent_rate(0.15, 0.15, 4), abs=0.03)


def test_errors_caught_on_the_way() -> None:
    chains = simulate(3000, 4, 0.15, after_clean=0.15, keep=0.2, seed=2)
    fit = fit_composition(chains, resamples=100)
    assert fit.verdict == "caught" and fit.high < 1.0


def test_errors_that_breed_errors() -> None:
    chains = simulate(3000, 4, 0.10, after_clean=0.30, keep=1.0, seed=3)
    fit = fit_composition(chains, resamples=100)
    assert fit.verdict == "amplify" and fit.low > 1.0


def test_rates_and_nothing_to_fit() -> None:
    chains = [Chain((BAD, OK, OK), False, OK), Chain((OK, OK, BAD), False, BAD)]
    assert step_rates(chains) == (0.5, 0.5)
    assert chain_rate(chains, 1) == 0.5 and chain_rate(chains, 2) == 0.0
    assert chain_rate(chains, 3) == 0.5
    clean = [Chain((OK, OK), False, OK)] * 5
    assert fit_composition(clean, resamples=10).verdict == "undetermined"
