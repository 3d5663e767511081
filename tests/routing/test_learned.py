"""Learned routers on RouterBench: train on *_train.csv, score on the whole *_test.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pinfactory.errors import RoutingError
from pinfactory.request import Request
from pinfactory.routing.classifier import ClassifierRouter
from pinfactory.routing.gumbel import GumbelRouter
from pinfactory.routing.learned import LearnedRouter
from pinfactory.routing.learned_kinds import load_router
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.table import RoutingTable

GPT4 = "gpt-4-1106-preview"


def outcome(table: RoutingTable, choice: np.ndarray) -> tuple[float, float]:
    rows = np.arange(len(table))
    return float(table.quality[rows, choice].mean()), float(table.cost[rows, choice].mean())


@pytest.fixture(scope="module")
def quality_router(routerbench_train: RoutingTable) -> QualityRouter:
    return QualityRouter().fit(routerbench_train)


def test_quality_router_matches_gpt4_for_less(
    quality_router: QualityRouter, routerbench_test: RoutingTable
) -> None:
    gpt4 = routerbench_test.members.index(GPT4)
    gpt4_quality = routerbench_test.quality[:, gpt4].mean()
    gpt4_cost = routerbench_test.cost[:, gpt4].mean()
    rng = np.random.default_rng(0)
    random_quality, _ = outcome(
        routerbench_test, rng.integers(0, len(routerbench_test.members), len(routerbench_test))
    )
    points = quality_router.sweep(routerbench_test)
    best_quality = max(q for _, q, _ in points)
    matching = [c for _, q, c in points if q >= gpt4_quality - 0.005]
    print(
        f"RouterBench test: gpt-4 {gpt4_quality:.3f} at ${gpt4_cost:.2e}; quality router best "
        f"{best_quality:.3f}; matches gpt-4 at {min(matching) / gpt4_cost:.0%} of its cost"
    )
    assert best_quality > random_quality + 0.1
    assert matching and min(matching) < 0.95 * gpt4_cost  # measured ~82% (all train rows)
    oracle_quality, oracle_cost = outcome(routerbench_test, routerbench_test.oracle())
    assert best_quality < oracle_quality and oracle_cost < min(matching)


def test_budget_calibration_holds_on_unseen_data(
    routerbench_train: RoutingTable, routerbench_test: RoutingTable
) -> None:
    budget = 1.0e-3
    router = QualityRouter(budget_usd=budget).fit(routerbench_train)
    quality, cost = outcome(routerbench_test, router.predict(routerbench_test.prompts))
    assert cost < 1.5 * budget
    cheapest = routerbench_test.cost.mean(axis=0).argmin()
    assert quality > routerbench_test.quality[:, cheapest].mean()
    target = QualityRouter(quality_target=0.8).fit(routerbench_train)
    assert outcome(routerbench_test, target.predict(routerbench_test.prompts))[0] > 0.77


def test_lambda_override_trades_quality_for_cost(
    quality_router: QualityRouter, routerbench_test: RoutingTable
) -> None:
    free = outcome(routerbench_test, quality_router.predict(routerbench_test.prompts, lam=0.0))
    frugal = outcome(routerbench_test, quality_router.predict(routerbench_test.prompts, lam=2e3))
    assert frugal[1] < free[1] / 5 and frugal[0] < free[0]


def test_neighbours_cost_model_prices_each_prompt_like_its_task(
    routerbench_train: RoutingTable, routerbench_test: RoutingTable
) -> None:
    router = QualityRouter(cost_model="neighbours", cost_k=20).fit(routerbench_train)
    gpt4 = router.members_.index(GPT4)
    labels = np.array(routerbench_test.labels)
    expected = router.expected_cost(router.embed(routerbench_test.prompts))[:, gpt4]
    for task in ("mbpp", "winogrande"):  # GPT-4 costs ~9.4e-3 on MBPP, ~3.5e-3 on Winogrande
        actual = routerbench_test.cost[labels == task, gpt4].mean()
        assert expected[labels == task].mean() == pytest.approx(actual, rel=0.1)
    assert expected[labels == "mbpp"].mean() > 2 * expected[labels == "winogrande"].mean()
    decision = router.decide(Request.from_text(routerbench_test.prompts[0]))
    chosen = router.members_.index(decision.member)
    own = router.expected_cost(router.embed(routerbench_test.prompts[:1]))[0, chosen]
    assert float(decision.estimated_cost_usd) == pytest.approx(own)
    assert f"${own:.2e}" in decision.reason
    with pytest.raises(RoutingError, match="cost_model 'median'; allowed: mean, neighbours"):
        QualityRouter(cost_model="median")  # type: ignore[arg-type]


def test_a_calibrated_neighbourhood_weighs_near_prompts_and_shrinks_to_the_mean() -> None:
    prompts = ["refund my order", "refund my parcel", "cancel my order", "poem about rain"]
    table = RoutingTable(
        ids=list("abcd"),
        prompts=prompts,
        members=["a", "b"],
        quality=np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float),
        cost=np.ones((4, 2)),
    )
    plain = QualityRouter("knn", k=4).fit(table)
    sharp = QualityRouter("knn", k=4, temperature=0.01).fit(table)
    shrunk = QualityRouter("knn", k=1, prior=1e6).fit(table)
    query = plain.embed(["refund my order please"])
    assert plain.predicted_quality(query)[0] == pytest.approx([0.5, 0.5])  # all four, equal
    assert sharp.predicted_quality(query)[0, 0] > 0.9  # the refunds are nearest
    assert shrunk.predicted_quality(query)[0] == pytest.approx([0.5, 0.5], abs=1e-4)
    with pytest.raises(RoutingError, match="temperature must be > 0"):
        QualityRouter("knn", temperature=0.0)


@pytest.mark.parametrize("model", ["logistic", "mlp", "knn"])
def test_classifier_routes_cheaply_above_the_cheapest_model(
    model: str, routerbench_train: RoutingTable, routerbench_test: RoutingTable
) -> None:
    router = ClassifierRouter(model).fit(routerbench_train)  # type: ignore[arg-type]
    quality, cost = outcome(routerbench_test, router.predict(routerbench_test.prompts))
    cheapest = routerbench_test.cost.mean(axis=0).argmin()
    assert quality >= routerbench_test.quality[:, cheapest].mean() - 0.01
    assert cost < float(np.median(routerbench_test.cost.mean(axis=0)))


def test_gumbel_router_learns_and_its_lambda_knob_works(
    routerbench_train: RoutingTable, routerbench_test: RoutingTable
) -> None:
    router = GumbelRouter(steps=300).fit(routerbench_train)
    rng = np.random.default_rng(1)
    random_quality, _ = outcome(
        routerbench_test, rng.integers(0, len(routerbench_test.members), len(routerbench_test))
    )
    quality, cost = outcome(routerbench_test, router.predict(routerbench_test.prompts, lam=0.0))
    _, frugal_cost = outcome(routerbench_test, router.predict(routerbench_test.prompts, lam=5e3))
    assert quality > random_quality
    assert frugal_cost < cost


@pytest.mark.parametrize(
    "router",
    [
        QualityRouter(),
        QualityRouter("knn"),
        QualityRouter(view="both"),
        ClassifierRouter("knn"),
        GumbelRouter(steps=50),
    ],
    ids=["quality", "quality-knn", "quality-both-views", "classifier-knn", "gumbel"],
)
def test_save_load_round_trip_gives_identical_decisions(
    router: LearnedRouter, routerbench_train: RoutingTable, tmp_path: Path
) -> None:
    small = routerbench_train.subset(np.arange(300))
    router.fit(small)
    path = tmp_path / "router.pkl"
    router.save(path)
    again = load_router(path)
    prompts = small.prompts[:100]
    assert type(again) is type(router)
    assert np.array_equal(again.predict(prompts), router.predict(prompts))
    assert np.allclose(again.scores(prompts), router.scores(prompts))


def test_bad_router_files_name_the_file_and_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pkl"
    with pytest.raises(RoutingError, match=r"nope\.pkl: cannot read"):
        load_router(missing)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a router at all")
    with pytest.raises(RoutingError, match=r"junk\.pkl: not a pinfactory router file"):
        load_router(junk)
    table = RoutingTable(
        ids=["a", "b", "c", "d"],
        prompts=["add two numbers", "capital of France", "sum 3 and 4", "who wrote Hamlet"],
        members=["calculator", "local"],
        quality=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]),
        cost=np.full((4, 2), 1e-6),
    )
    good = tmp_path / "good.pkl"
    QualityRouter().fit(table).save(good)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(RoutingError, match=r"truncated\.pkl: corrupt router file"):
        load_router(truncated)
    with pytest.raises(RoutingError, match=r"holds a 'quality' router, not a 'gumbel'"):
        GumbelRouter.load(good)
