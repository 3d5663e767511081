"""Information-theoretic measures of how a team's outputs work together.

All estimators are plug-in (empirical frequency) estimates over discrete
symbols, in bits; continuous outputs are binned first (:func:`discretise`).
Plug-in estimates are biased upwards on small samples, so every measure comes
with a permutation test (:func:`permutation_test`): shuffling the target
breaks any relation while keeping the marginals, and the p-value says how
often chance alone reaches the observed value.

- :func:`mutual_information`, :func:`time_delayed_mi` (I(X_t; Y_{t+lag})).
- :func:`pid`: a partial information decomposition of what two sources S1, S2
  carry about a target T into redundancy, two unique parts and synergy
  (Williams & Beer 2010, "Nonnegative Decomposition of Multivariate
  Information", arXiv:1004.2515). The redundancy function is named:
  ``"imin"`` is Williams and Beer's I_min (expected minimum specific
  information); ``"mmi"`` is the minimum mutual information
  min(I(S1;T), I(S2;T)) (Barrett 2015, "Exploration of synergistic and
  redundant information sharing in static and dynamical Gaussian systems",
  Phys. Rev. E 91, 052802). Synergy is what only the pair carries:
  I(S1,S2;T) - I(S1;T) - I(S2;T) + redundancy.
- :func:`o_information`: Rosas et al. 2019 ("Quantifying high-order
  interdependencies via multivariate extensions of the mutual information",
  Phys. Rev. E 100, 032305): Omega > 0 means redundancy dominates a group of
  n >= 3 variables, Omega < 0 synergy.

Riedl (2025, "Emergent coordination in multi-agent language models") measures
a group's coordination with such a decomposition over time; ``bench/agents_eval.py``
applies these to the guessing game's per-agent guesses.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

Redundancy = Literal["imin", "mmi"]
Symbols = Sequence[Hashable]


def entropy(*columns: Symbols) -> float:
    """Joint entropy H(X1, ..., Xk) in bits of equally long symbol sequences."""
    rows = list(zip(*columns, strict=True))
    if not rows:
        return 0.0
    n = len(rows)
    return -sum(c / n * math.log2(c / n) for c in Counter(rows).values())


def mutual_information(x: Symbols, y: Symbols) -> float:
    """I(X; Y) in bits (never negative; rounding noise is clipped)."""
    return max(0.0, entropy(x) + entropy(y) - entropy(x, y))


def joint(*columns: Symbols) -> list[tuple[Hashable, ...]]:
    """Several sequences as one sequence of tuples (a joint variable)."""
    return list(zip(*columns, strict=True))


def time_delayed_mi(x: Symbols, y: Symbols, lag: int = 1) -> float:
    """I(X_t; Y_{t+lag}): how much X now tells about Y ``lag`` steps later."""
    if lag < 0 or lag >= len(x):
        raise ValueError(f"lag must be in [0, {len(x) - 1}]; got {lag}")
    return mutual_information(list(x)[: len(x) - lag], list(y)[lag:])


def _specific_information(source: Symbols, target: Symbols, t: Hashable) -> float:
    """I_spec(T=t; S) = sum_s p(s|t) log2(p(t|s) / p(t))."""
    n = len(target)
    p_t = sum(1 for v in target if v == t) / n
    joint_counts = Counter(s for s, v in zip(source, target, strict=True) if v == t)
    source_counts = Counter(source)
    total = sum(joint_counts.values())
    return sum(c / total * math.log2((c / source_counts[s]) / p_t) for s, c in joint_counts.items())


def redundancy(s1: Symbols, s2: Symbols, target: Symbols, how: Redundancy = "imin") -> float:
    """Shared information the two sources carry about the target (see the module's sources)."""
    if how == "mmi":
        return min(mutual_information(s1, target), mutual_information(s2, target))
    n = len(target)
    return sum(
        count / n * min(_specific_information(s1, target, t), _specific_information(s2, target, t))
        for t, count in Counter(target).items()
    )


@dataclass(frozen=True, slots=True)
class PID:
    """The decomposition of I(S1, S2; T), in bits: redundancy + unique_1 + unique_2 + synergy."""

    redundancy: float
    unique_1: float
    unique_2: float
    synergy: float
    total: float
    measure: Redundancy


def pid(s1: Symbols, s2: Symbols, target: Symbols, how: Redundancy = "imin") -> PID:
    """Partial information decomposition of two sources about a target."""
    r = redundancy(s1, s2, target, how)
    i1, i2 = mutual_information(s1, target), mutual_information(s2, target)
    total = mutual_information(joint(s1, s2), target)
    return PID(r, i1 - r, i2 - r, total - i1 - i2 + r, total, how)


def o_information(columns: Sequence[Symbols]) -> float:
    """Omega(X1..Xn) = (n-2) H(X) + sum_j [H(X_j) - H(X_-j)]; > 0 redundant, < 0 synergistic."""
    n = len(columns)
    if n < 3:
        raise ValueError(f"O-information needs at least 3 variables; got {n}")
    whole = entropy(*columns)
    parts = sum(
        entropy(columns[j]) - entropy(*(c for i, c in enumerate(columns) if i != j))
        for j in range(n)
    )
    return (n - 2) * whole + parts


@dataclass(frozen=True, slots=True)
class Tested:
    """An observed statistic, its permutation p-value and the null's mean."""

    value: float
    p_value: float
    null_mean: float


def permutation_test(
    statistic: Callable[[list[Hashable]], float],
    target: Symbols,
    *,
    permutations: int = 200,
    seed: int = 0,
    alternative: Literal["greater", "less"] = "greater",
) -> Tested:
    """Shuffle the target, recompute; p = (1 + #{null as extreme}) / (1 + permutations)."""
    rng = random.Random(seed)
    observed = statistic(list(target))
    shuffled = list(target)
    null = []
    for _ in range(permutations):
        rng.shuffle(shuffled)
        null.append(statistic(list(shuffled)))
    if alternative == "greater":
        extreme = sum(1 for v in null if v >= observed - 1e-12)
    else:
        extreme = sum(1 for v in null if v <= observed + 1e-12)
    return Tested(observed, (1 + extreme) / (1 + permutations), sum(null) / len(null))


def discretise(values: Sequence[float], bins: int = 3) -> list[int]:
    """Equal-frequency bins (0..bins-1) by rank; ties share a bin."""
    if not values:
        return []
    order = sorted(values)
    edges = [order[min(len(order) - 1, (len(order) * k) // bins)] for k in range(1, bins)]
    return [sum(1 for e in edges if v >= e) if len(set(values)) > 1 else 0 for v in values]


def moves(values: Sequence[float]) -> list[int]:
    """Each step's direction: -1 down, 0 same, 1 up (len(values) - 1 symbols)."""
    return [(b > a) - (b < a) for a, b in itertools.pairwise(values)]


@dataclass(frozen=True, slots=True)
class GroupInformation:
    """How a group's per-round outputs relate, pooled over runs (bits, permutation p-values).

    ``pid`` splits what players 1 and 2's moves at round t say about the group's outcome at
    t+1; ``o_information`` is over players 1-3's moves at t (< 0: synergy dominates);
    ``tdmi`` is I(player 1's move at t; player 2's move at t+1).
    """

    samples: int
    pid: PID
    synergy_p: float
    redundancy_p: float
    o_information: float
    o_information_p: float
    tdmi: float
    tdmi_p: float


def group_information(
    runs: Sequence[tuple[Sequence[Sequence[float]], Sequence[Hashable]]],
    *,
    permutations: int = 200,
    seed: int = 0,
) -> GroupInformation | None:
    """Measures over runs of (outputs[round][player], outcome[round]) with >= 3 players.

    Moves are the direction of each player's change between rounds; samples are pooled over
    runs (one run has too few rounds alone). None when there are fewer than 4 samples.
    """
    s1: list[Hashable] = []
    s2: list[Hashable] = []
    s3: list[Hashable] = []
    future: list[Hashable] = []
    lead: list[Hashable] = []
    follow: list[Hashable] = []
    for outputs, outcome in runs:
        if not outputs or len(outputs[0]) < 3:
            continue
        players = [moves([r[i] for r in outputs]) for i in range(3)]
        for t in range(len(players[0]) - 1):  # move t (round t -> t+1) and outcome at t+2
            if t + 2 >= len(outcome):
                break
            s1.append(players[0][t])
            s2.append(players[1][t])
            s3.append(players[2][t])
            future.append(outcome[t + 2])
            lead.append(players[0][t])
            follow.append(players[1][t + 1])
    if len(future) < 4:
        return None
    synergy = permutation_test(
        lambda t: pid(s1, s2, t).synergy, future, permutations=permutations, seed=seed
    )
    redundancy = permutation_test(
        lambda t: pid(s1, s2, t).redundancy, future, permutations=permutations, seed=seed
    )
    omega = permutation_test(
        lambda t: o_information([s1, s2, t]),
        s3,
        permutations=permutations,
        seed=seed,
        alternative="less",
    )
    tdmi = permutation_test(
        lambda t: mutual_information(lead, t), follow, permutations=permutations, seed=seed
    )
    return GroupInformation(
        len(future),
        pid(s1, s2, future),
        synergy.p_value,
        redundancy.p_value,
        omega.value,
        omega.p_value,
        tdmi.value,
        tdmi.p_value,
    )
