"""The live bandit router: learns from feedback and verdicts without a restart, shares
its model through the ledger across gateways, bounds exploration per unit, and seals
each decision's propensity."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from pinfactory.errors import TeamFileError
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request
from pinfactory.routing import build_router
from pinfactory.routing.online import BanditRouter, Learner
from pinfactory.team import Team, parse_team

KEY = "sk-sales-0001"


def team_text(ledger: Path, routing: str, extra: str = "") -> str:
    return f"""
name: learning
members:
  - {{name: cheap, kind: calculator, price: {{per_call: 0.001}}}}
  - {{name: dear, kind: calculator, price: {{per_call: 0.002}}}}
routing: {{kind: bandit, fallback: cheap, {routing}}}
ledger: {{path: '{ledger}'}}
{extra}"""


def decisions(ledger: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(ledger)
    try:
        bodies = db.execute("SELECT body FROM audit WHERE kind = 'decision' ORDER BY seq")
        return [json.loads(body)["payload"] for (body,) in bodies]
    finally:
        db.close()


@pytest.fixture
def two_gateways(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    ledger = tmp_path / "ledger.db"
    text = team_text(
        ledger, "epsilon: 0, alpha: 0.5, sync_s: 0.1", f"keys: [{{key: {KEY}, unit: sales}}]"
    )
    first, second = (parse_team(text, "learning.yaml", {}) for _ in range(2))
    with serve_in_thread(create_app(first)) as a, serve_in_thread(create_app(second)) as b:
        yield a, b, ledger


def ask(url: str) -> tuple[str, str]:
    """(request id, member) of asking ``2+2``."""
    with OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "2+2"}]
        )
    return raw.headers["x-request-id"], raw.headers["x-pinfactory-member"]


def thumbs(url: str, request_id: str, way: str) -> None:
    sent = httpx.post(
        url + "/v1/feedback",
        json={"request_id": request_id, "thumbs": way},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert sent.status_code == 200, sent.text


def test_feedback_to_one_gateway_teaches_both(two_gateways: tuple[str, str, Path]) -> None:
    a, b, ledger = two_gateways
    first, member = ask(a)
    assert member == "cheap"  # no outcomes yet: the arms tie, the first wins
    assert ask(b)[1] == "cheap"
    thumbs(a, first, "down")
    assert ask(a)[1] == "dear"  # the gateway that took the feedback learned it at once
    deadline = time.monotonic() + 30
    while ask(b)[1] != "dear":  # the other reads it from the ledger within sync_s
        assert time.monotonic() < deadline, "gateway b never learned gateway a's feedback"
        time.sleep(0.1)
    sealed = decisions(ledger)
    assert all(d["router"] == "bandit" and d["propensity"] == 1.0 for d in sealed)
    assert all(len(d["context"]) == 33 for d in sealed)  # 32 projected dims and a constant


def test_verdicts_teach_without_feedback(tmp_path: Path) -> None:
    verified = (
        "verification: {verifiers: ['tests.gateway.test_feedback:SumsOnly'], "
        "only_with_evidence: false}"
    )
    team = parse_team(team_text(tmp_path / "l.db", "epsilon: 0", verified), "t.yaml", {})

    async def run() -> tuple[int, int]:
        async with open_pipeline(team) as pipeline:
            router = pipeline.router
            assert isinstance(router, BanditRouter)
            for text in ("2+2", "6*7", "what is 3 plus 4"):
                await pipeline.complete(Request.from_text(text))
            learned = await router.learn(pipeline.ledger)
            return learned, router.learned_

    learned, total = asyncio.run(run())
    assert learned == total == 3  # one verdict per answer, each folded into its arm


def test_exploration_is_bounded_per_unit_across_workers(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    team = parse_team(team_text(ledger, "epsilon: 1, explore_share: 0.2, sync_s: 60"), "t.yaml", {})

    async def serve(team: Team, unit: str, n: int) -> BanditRouter:
        async with open_pipeline(team) as pipeline:  # catches up with the ledger first
            router = pipeline.router
            assert isinstance(router, BanditRouter)
            for i in range(n):
                await pipeline.complete(Request.from_text(f"{i} + 1", unit=unit))
            return router

    asyncio.run(serve(team, "sales", 40))
    second = asyncio.run(serve(team, "sales", 40))
    counted = second._budget("sales")
    assert counted.decisions == 80  # the first worker's 40 came from the ledger
    third = asyncio.run(serve(team, "support", 10))
    by_unit: dict[str, list[bool]] = {}
    db = sqlite3.connect(ledger)
    units = dict(db.execute("SELECT request_id, unit FROM requests").fetchall())
    rows = db.execute("SELECT request_id, body FROM audit WHERE kind = 'decision'").fetchall()
    db.close()
    for rid, body in rows:
        d = json.loads(body)["payload"]
        assert d["propensity"] in (0.5, 1.0)  # epsilon 1 over two arms, or greedy at the bound
        best = max(d["scores"], key=lambda m: d["scores"][m])
        by_unit.setdefault(units[rid], []).append(d["member"] != best)
    assert len(by_unit["sales"]) == 80 and len(by_unit["support"]) == 10
    assert sum(by_unit["sales"]) <= 0.2 * 80 + 1
    assert sum(by_unit["support"]) <= 0.2 * 10 + 1
    assert sum(by_unit["sales"]) >= 8  # it did explore, up to its share
    assert third._budget("support").decisions == 10


def test_the_team_file_is_checked() -> None:
    for routing, says in (
        ("members: [cheap, nobody]", r"unknown member\(s\) nobody"),
        ("encoder: bert", "unknown encoder 'bert'"),
        ("epsilon: 2", "epsilon"),
    ):
        with pytest.raises(TeamFileError, match=says):
            build_router(parse_team(team_text(Path("x.db"), routing), "t.yaml", {}))


def test_the_router_is_a_learner(tmp_path: Path) -> None:
    router = build_router(parse_team(team_text(tmp_path / "l.db", "lam: 10"), "t.yaml", {}))
    assert isinstance(router, Learner)
    decision = router.decide(Request.from_text("2+2"))
    assert decision.propensity is not None and 0 < decision.propensity <= 1
    assert decision.to_json()["propensity"] == decision.propensity
