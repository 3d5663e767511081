"""Composed routers in the grid: cascades pay every tier tried; semantic routes from data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pinfactory.lab import datasets, metrics
from pinfactory.lab.composed import (
    CascadeLab,
    CascadeParams,
    HybridLab,
    SemanticLab,
    SemanticParams,
    frontier,
)
from pinfactory.lab.grid import _copies, cells, load_grid, sample_train
from pinfactory.request import Request
from pinfactory.routing.table import RoutingTable

GRIDS = Path(__file__).resolve().parents[2] / "lab" / "grids"


def _table() -> RoutingTable:
    # members: cheap (cost 1), mid (cost 2, dominated by nothing), big (cost 10)
    quality = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=float)
    cost = np.tile([1.0, 2.0, 10.0], (4, 1))
    return RoutingTable(
        ids=list("abcd"),
        prompts=["p1", "p2", "p3", "p4"],
        members=["cheap", "mid", "big"],
        quality=quality,
        cost=cost,
    )


def test_a_cascade_pays_every_tier_it_tried() -> None:
    table = _table()
    cascade = CascadeLab("c", 0, CascadeParams(scorer="judge", error=0.0)).fit(table)
    assert cascade.tiers_ == [0, 1, 2] == frontier(table)
    replay = cascade.predict(table)  # the whole chain, a judge that is never wrong
    assert replay.kept.tolist() == [0, 1, 2, 2]
    assert replay.cost.tolist() == [1.0, 3.0, 13.0, 13.0]
    outcome = metrics.evaluate_replay(table, replay)
    assert outcome.quality == 0.75 and outcome.accuracy == 1.0
    assert outcome.cost_usd == pytest.approx(30.0 / 4)
    assert outcome.shares == (0.25, 0.25, 0.5)
    # the knob picks a sub-chain: 'cheap -> big' skips mid
    chains = cascade._chains()
    skip = chains.index((0, 2))
    assert cascade.predict(table, float(skip)).cost.tolist() == [1.0, 11.0, 11.0, 11.0]


def test_a_replay_cannot_claim_a_better_answer_or_a_cheaper_bill() -> None:
    table = _table()
    kept = np.array([0, 0, 0, 0])
    with pytest.raises(ValueError, match="quality"):
        metrics.evaluate_replay(table, metrics.Replay(np.ones(4), np.ones(4), kept))
    with pytest.raises(ValueError, match="cost less"):
        metrics.evaluate_replay(table, metrics.Replay(table.quality[:, 0], np.zeros(4), kept))


def test_semantic_routes_learned_from_ten_examples_per_member(shared_data: Path) -> None:
    splits = datasets.load("clinc150", shared_data)
    train = sample_train(splits.train, 10, 0, per_member=True)
    router = SemanticLab("semantic", 0, SemanticParams(encoder="minilm-static")).fit(train)
    test = splits.test.subset(np.arange(0, len(splits.test), 5))
    choices = router.predict(test)
    accuracy = metrics.accuracy(test, choices)
    generalist = test.members.index("generalist")
    assert accuracy > 0.4  # 11 members: one specialist alone gets about 0.08
    assert 0 < (choices == generalist).mean() < 0.6  # it abstains, and not on everything


def test_unseeded_routers_on_the_whole_split_are_fitted_once() -> None:
    path = GRIDS / "clinc_rules_vs_learned.yaml"
    todo = cells(load_grid(path), path)
    copies = _copies(todo)
    knn_all = [c for c in todo if c.router.name == "knn" and c.train_size == "all"]
    assert len(knn_all) == 5 and copies[knn_all[0].key] == knn_all
    rules = [c for c in todo if c.router.name == "rules"]
    assert len(copies[rules[0].key]) == 5  # rules learn nothing: one per size, shared by the seeds
    gumbel = [c for c in todo if c.router.name == "gumbel" and c.train_size == "all"]
    assert all(copies[c.key] == [c] for c in gumbel)  # seeded: each seed its own fit
    assert sum(len(v) for v in copies.values()) == len(todo)


def test_the_batched_hybrid_decides_as_the_hybrid_router(shared_data: Path) -> None:
    splits = datasets.load("clinc150", shared_data)
    train = sample_train(splits.train, 10, 1, per_member=True)
    rules = (GRIDS.parent / "rules" / "clinc_domains.yaml").resolve()
    hybrid = HybridLab("hybrid", 1, rules, SemanticParams(encoder="minilm-static")).fit(train)
    test = splits.test.subset(np.arange(0, len(splits.test), 25))
    one_by_one = [
        test.members.index(hybrid.router_.decide(Request.from_text(p)).member) for p in test.prompts
    ]
    assert hybrid.predict(test).tolist() == one_by_one


def test_learned_rows_get_their_seed_and_the_measured_encoder() -> None:
    from pinfactory.lab.routers import PythonRouter, RouterSpec

    table = RoutingTable(
        ids=[str(i) for i in range(8)],
        prompts=[f"question number {i} about {w}" for i, w in enumerate("abcdefgh")],
        members=["cheap", "big"],
        quality=np.array([[i % 2, 1] for i in range(8)], dtype=float),
        cost=np.tile([1.0, 10.0], (8, 1)),
    )
    cluster = RouterSpec(
        name="c", target="pinfactory.routing.cluster:ClusterRouter", params={"clusters": 2}
    )
    fitted = PythonRouter(cluster, seed=3).fit(table)
    assert fitted.router_.seed == 3  # the seed is one of **common, not a named parameter
    assert fitted.encoder == fitted.router_.encoder == "minilm-static"  # lab/encoders.py
    quality = RouterSpec(name="q", target="pinfactory.routing.quality:QualityRouter")
    assert PythonRouter(quality, seed=0).encoder == "minilm"
    named = RouterSpec(
        name="q", target="pinfactory.routing.quality:QualityRouter",
        params={"encoder": "minilm-static"},
    )  # fmt: skip
    assert PythonRouter(named, seed=0).encoder == "minilm-static"
    assert SemanticParams().encoder == "minilm"
