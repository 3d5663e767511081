"""Routing metrics: what a router's choices are worth on a replayed table.

A router's choices are one member index per prompt. From them:

- ``accuracy``: the share of prompts routed to a member that reaches the
  best quality available for that prompt (what the per-query oracle gets).
  On intent data (one right member) it is plain routing accuracy.
- ``quality``, ``cost``: mean quality and mean / total USD per prompt.

Swept over its knob (lambda, threshold), a router traces cost-quality points:

- :func:`hull`: the non-decreasing convex hull (RouterBench, Hu et al. 2024,
  section 4): the upper concave hull of the points, cut at its best quality;
  any cost beyond it keeps that quality. Points on it are reachable by
  mixing two neighbouring settings at random.
- :func:`aiq`: Average Improvement in Quality, the area under the hull over
  ``[c_min, c_max]`` divided by ``c_max - c_min`` (RouterBench eq. 4). Below
  the router's cheapest point the hull is 0 (nothing reached there), as in
  RouterBench's code.
- :func:`cost_to_reach` and :func:`savings`: the cheapest cost at which the
  hull reaches a quality, and the share saved against a single member at
  that member's quality.

Two members (weak, strong), as RouteLLM (Ong et al. 2024, section 3.2) defines
them, with ``c`` the share of calls to the strong member:

- ``PGR = (q - q_weak) / (q_strong - q_weak)``;
- ``APGR``: the area under PGR(c) for c in [0, 1] (trapezoids; the all-weak
  and all-strong points are added: every router reaches them);
- ``CPT(x)``: the smallest strong share among the swept points whose PGR is
  at least x. Random routing has APGR 0.5 and CPT(50%) = 50%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pinfactory.routing.table import RoutingTable

Indices = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one set of choices achieved on a table (means are per prompt)."""

    accuracy: float
    quality: float
    cost_usd: float
    total_cost_usd: float
    shares: tuple[float, ...]


def chosen(table: RoutingTable, choices: Indices) -> tuple[Floats, Floats]:
    """Per prompt, the quality and cost of the chosen member."""
    choices = np.asarray(choices, dtype=np.int64)
    if choices.shape != (len(table),):
        raise ValueError(f"expected {len(table)} choices, got shape {choices.shape}")
    if len(choices) and (choices.min() < 0 or choices.max() >= len(table.members)):
        raise ValueError(f"choices must index the {len(table.members)} members")
    rows = np.arange(len(table))
    return table.quality[rows, choices], table.cost[rows, choices]


def accuracy(table: RoutingTable, choices: Indices) -> float:
    """Share of prompts routed to a member with the best available quality."""
    quality, _ = chosen(table, choices)
    best = table.quality.max(axis=1)
    return float(np.mean(np.isclose(quality, best))) if len(table) else 0.0


def evaluate(table: RoutingTable, choices: Indices) -> Outcome:
    quality, cost = chosen(table, choices)
    counts = np.bincount(np.asarray(choices, dtype=np.int64), minlength=len(table.members))
    return Outcome(
        accuracy=accuracy(table, choices),
        quality=float(quality.mean()),
        cost_usd=float(cost.mean()),
        total_cost_usd=float(cost.sum()),
        shares=tuple(float(x) for x in counts / max(1, len(table))),
    )


@dataclass(frozen=True)
class Replay:
    """Per prompt, what a router that is more than one choice achieved.

    A cascade pays every tier it tried and keeps one answer: ``quality`` is
    the kept answer's, ``cost`` the sum over the tiers tried, ``kept`` the
    member whose answer was kept (its share is reported as for any router).
    """

    quality: Floats
    cost: Floats
    kept: Indices


def evaluate_replay(table: RoutingTable, replay: Replay) -> Outcome:
    """As :func:`evaluate`, from per-prompt quality and cost; accuracy counts the
    prompts whose kept answer reaches the best quality available."""
    n = len(table)
    if replay.quality.shape != (n,) or replay.cost.shape != (n,) or replay.kept.shape != (n,):
        raise ValueError(f"a replay needs {n} qualities, costs and kept members")
    rows = np.arange(n)
    if not np.allclose(replay.quality, table.quality[rows, replay.kept]):
        raise ValueError("a replay's quality must be that of the answer it kept")
    if (replay.cost < table.cost[rows, replay.kept] - 1e-15).any():
        raise ValueError("a replay cannot cost less than the member whose answer it kept")
    counts = np.bincount(replay.kept, minlength=len(table.members))
    best = table.quality.max(axis=1)
    return Outcome(
        accuracy=float(np.mean(np.isclose(replay.quality, best))) if n else 0.0,
        quality=float(replay.quality.mean()),
        cost_usd=float(replay.cost.mean()),
        total_cost_usd=float(replay.cost.sum()),
        shares=tuple(float(x) for x in counts / max(1, n)),
    )


def hull(costs: Sequence[float], qualities: Sequence[float]) -> Floats:
    """The non-decreasing convex hull of cost-quality points, as (k, 2) rows sorted by cost."""
    points = np.column_stack([np.asarray(costs, float), np.asarray(qualities, float)])
    if len(points) == 0:
        return np.zeros((0, 2))
    order = np.lexsort((-points[:, 1], points[:, 0]))
    upper: list[tuple[float, float]] = []
    for x, y in points[order]:
        if upper and np.isclose(upper[-1][0], x):
            continue  # same cost: the first (best quality) one is kept
        while len(upper) >= 2:
            (x1, y1), (x2, y2) = upper[-2], upper[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:  # upper[-1] not above the chord
                upper.pop()
            else:
                break
        upper.append((float(x), float(y)))
    result = np.array(upper)
    peak = int(np.argmax(result[:, 1]))
    return result[: peak + 1]


def hull_at(vertices: Floats, cost: float) -> float:
    """The hull's quality at a cost: 0 below its cheapest point, flat past its last."""
    if len(vertices) == 0 or cost < vertices[0, 0]:
        return 0.0
    return float(np.interp(cost, vertices[:, 0], vertices[:, 1]))


def costs_differ(costs: Sequence[float] | Floats) -> bool:
    """Whether the costs span a range (AIQ and cost-to-quality need one; equal-cost
    members, as on intent data, leave none)."""
    values = np.asarray(costs, float)
    return len(values) > 1 and not np.isclose(values.min(), values.max(), rtol=1e-9, atol=0)


def aiq(costs: Sequence[float], qualities: Sequence[float], c_min: float, c_max: float) -> float:
    """Area under the non-decreasing convex hull over [c_min, c_max], normalised by the range."""
    if c_max <= c_min:
        raise ValueError(f"empty cost range [{c_min}, {c_max}]")
    vertices = hull(costs, qualities)
    breaks = [c for c in vertices[:, 0] if c_min < c < c_max]
    xs = np.array([c_min, *breaks, c_max])
    # the hull is linear between breaks (with a jump at its first point): midpoints are exact
    mids = (xs[:-1] + xs[1:]) / 2
    area = sum(hull_at(vertices, m) * w for m, w in zip(mids, np.diff(xs), strict=True))
    return float(area / (c_max - c_min))


def cost_to_reach(
    costs: Sequence[float], qualities: Sequence[float], target: float
) -> float | None:
    """The least cost at which the hull reaches ``target`` quality; None if it never does."""
    vertices = hull(costs, qualities)
    if len(vertices) == 0 or vertices[-1, 1] < target - 1e-12:
        return None
    if vertices[0, 1] >= target:
        return float(vertices[0, 0])
    k = int(np.argmax(vertices[:, 1] >= target - 1e-12))
    (x1, y1), (x2, y2) = vertices[k - 1], vertices[k]
    return float(x1 + (target - y1) * (x2 - x1) / (y2 - y1))


def savings(
    costs: Sequence[float], qualities: Sequence[float], single_cost: float, single_quality: float
) -> float | None:
    """Share of a single member's cost saved at its quality (negative: dearer)."""
    needed = cost_to_reach(costs, qualities, single_quality)
    if needed is None or single_cost <= 0:
        return None
    return 1.0 - needed / single_cost


def pgr(quality: float | Floats, weak: float, strong: float) -> float | Floats:
    """Performance gap recovered: 0 at the weak member's quality, 1 at the strong's."""
    if strong == weak:
        raise ValueError("PGR is undefined when both members have the same quality")
    return (quality - weak) / (strong - weak)


def _pgr_curve(
    strong_shares: Sequence[float], qualities: Sequence[float], weak: float, strong: float
) -> tuple[Floats, Floats]:
    shares = np.concatenate([[0.0], np.asarray(strong_shares, float), [1.0]])
    values = np.concatenate(
        [[0.0], np.asarray(pgr(np.asarray(qualities, float), weak, strong)), [1.0]]
    )
    order = np.lexsort((values, shares))
    return shares[order], values[order]


def apgr(
    strong_shares: Sequence[float], qualities: Sequence[float], weak: float, strong: float
) -> float:
    """Average PGR over the strong-call share in [0, 1] (trapezoids)."""
    shares, values = _pgr_curve(strong_shares, qualities, weak, strong)
    return float(np.sum(np.diff(shares) * (values[1:] + values[:-1]) / 2))


def cpt(
    strong_shares: Sequence[float],
    qualities: Sequence[float],
    weak: float,
    strong: float,
    target: float,
) -> float:
    """Call-performance threshold: the least strong share with PGR >= ``target``."""
    shares, values = _pgr_curve(strong_shares, qualities, weak, strong)
    reached = shares[values >= target - 1e-12]
    return float(reached.min())
