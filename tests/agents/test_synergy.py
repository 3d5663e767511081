"""The measures on systems whose answers are known."""

from __future__ import annotations

import random

import pytest

from pinfactory.agents.synergy import (
    discretise,
    entropy,
    group_information,
    joint,
    mutual_information,
    o_information,
    permutation_test,
    pid,
    time_delayed_mi,
)

N = 400


def bits(seed: int, n: int = N) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(0, 1) for _ in range(n)]


def test_entropy_of_a_fair_coin_and_a_constant() -> None:
    assert entropy([0, 1] * 50) == pytest.approx(1.0)
    assert entropy([3] * 10) == 0.0
    assert entropy([0, 1, 2, 3] * 10) == pytest.approx(2.0)


@pytest.mark.parametrize("how", ["imin", "mmi"])
def test_xor_is_pure_synergy(how: str) -> None:
    a, b = bits(1), bits(2)
    target = [x ^ y for x, y in zip(a, b, strict=True)]
    found = pid(a, b, target, how)  # type: ignore[arg-type]
    assert found.synergy > 0.95
    assert found.redundancy < 0.02
    assert abs(found.unique_1) < 0.02 and abs(found.unique_2) < 0.02
    tested = permutation_test(lambda t: pid(a, b, t, "imin").synergy, target, permutations=99)
    assert tested.p_value <= 0.01
    assert tested.null_mean < 0.05


@pytest.mark.parametrize("how", ["imin", "mmi"])
def test_copies_are_pure_redundancy(how: str) -> None:
    a = bits(3)
    found = pid(a, list(a), list(a), how)  # type: ignore[arg-type]
    assert found.redundancy == pytest.approx(1.0, abs=0.01)
    assert found.synergy == pytest.approx(0.0, abs=1e-9)
    assert found.unique_1 == pytest.approx(0.0, abs=1e-9)
    tested = permutation_test(lambda t: pid(a, list(a), t, "imin").redundancy, a, permutations=99)
    assert tested.p_value <= 0.01


def test_independent_noise_shows_neither() -> None:
    a, b, target = bits(4), bits(5), bits(6)
    found = pid(a, b, target)
    assert found.synergy < 0.05 and found.redundancy < 0.05
    synergy = permutation_test(lambda t: pid(a, b, t).synergy, target, permutations=99)
    redundancy = permutation_test(lambda t: pid(a, b, t).redundancy, target, permutations=99)
    assert synergy.p_value > 0.05
    assert redundancy.p_value > 0.05


def test_a_unique_source_is_unique() -> None:
    a, b = bits(7), bits(8)
    found = pid(a, b, list(a))
    assert found.unique_1 == pytest.approx(1.0, abs=0.02)
    assert found.unique_2 == pytest.approx(0.0, abs=0.02)
    assert found.synergy == pytest.approx(0.0, abs=0.02)


def test_o_information_signs() -> None:
    a, b = bits(9), bits(10)
    xor = [x ^ y for x, y in zip(a, b, strict=True)]
    assert o_information([a, b, xor]) == pytest.approx(-1.0, abs=0.03)  # synergy-dominated
    assert o_information([a, list(a), list(a)]) == pytest.approx(entropy(a))  # redundant: H(a)
    noise = o_information([a, b, bits(11)])
    assert abs(noise) < 0.03
    with pytest.raises(ValueError, match="at least 3"):
        o_information([a, b])


def test_time_delayed_mi_sees_a_lagged_copy_only_at_its_lag() -> None:
    x = bits(12)
    y = [0, *x[:-1]]  # y copies x one step later
    assert time_delayed_mi(x, y, lag=1) == pytest.approx(1.0, abs=0.01)
    assert time_delayed_mi(x, y, lag=0) < 0.02
    tested = permutation_test(lambda t: time_delayed_mi(x, t, 1), y, permutations=99)
    assert tested.p_value <= 0.01
    with pytest.raises(ValueError, match="lag"):
        time_delayed_mi(x, y, lag=len(x))


def test_mutual_information_of_a_joint_variable() -> None:
    a, b = bits(13), bits(14)
    both = joint(a, b)
    assert mutual_information(both, a) == pytest.approx(1.0, abs=0.01)


def test_discretise_by_rank() -> None:
    assert discretise([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], bins=3) == [0, 0, 1, 1, 2, 2]
    assert discretise([5.0, 5.0, 5.0]) == [0, 0, 0]
    assert discretise([]) == []


def walk(rng: random.Random, steps: list[int]) -> list[float]:
    out = [25.0]
    for step in steps:
        out.append(out[-1] + step)
    return out


def test_group_information_finds_synergy_in_complementary_players() -> None:
    rng = random.Random(20)
    complementary, redundant = [], []
    for _ in range(60):
        m = [[rng.choice((-1, 1)) for _ in range(6)] for _ in range(3)]
        outputs = [list(r) for r in zip(*(walk(rng, p) for p in m), strict=True)]
        outcome = [0, 0, *[m[0][t] * m[1][t] for t in range(6)]][:7]
        complementary.append((outputs, outcome))
        copy = [m[0], m[0], m[2]]  # player 2 copies player 1, the outcome follows both
        outputs = [list(r) for r in zip(*(walk(rng, p) for p in copy), strict=True)]
        redundant.append((outputs, [0, 0, *m[0]][:7]))
    found = group_information(complementary, permutations=49)
    assert found is not None and found.samples == 60 * 5
    assert found.pid.synergy > 0.9 and found.synergy_p <= 0.02
    assert found.pid.redundancy < 0.05
    same = group_information(redundant, permutations=49)
    assert same is not None
    assert same.pid.redundancy > 0.9 and same.redundancy_p <= 0.02 and same.pid.synergy < 0.05
    assert same.tdmi < 0.05  # player 1's move does not predict player 2's next one
    assert group_information([([[1.0, 2.0, 3.0]], [0])]) is None
