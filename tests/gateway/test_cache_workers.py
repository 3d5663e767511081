"""Two real gateway processes sharing their response cache through a real Redis: an
answer one worker stored answers the other's repeat (exact) and paraphrase (semantic),
booked at no cost with the source request named; other units still miss."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from pinfactory.testing.processes import served

pytestmark = [pytest.mark.slow]
SALES, SUPPORT = "sk-sales-0001", "sk-support-0002"


def team_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "cached.yaml"
    path.write_text(
        f"name: c{uuid.uuid4().hex[:10]}\n"  # its own key namespace in the shared Redis
        "members:\n"
        "  - {name: calc, kind: calculator, price: {per_call: 0.01}}\n"
        "routing: {kind: rules, fallback: calc}\n"
        "cache: {semantic: true, threshold: 0.8}\n"
        f"keys: [{{key: {SALES}, unit: sales}}, {{key: {SUPPORT}, unit: support}}]\n"
        f"state: {{redis_url: '{url}'}}\n"
        f"ledger: {{path: '{tmp_path / 'ledger.db'}'}}\n"
        "observe: {access_log: false}\n"
    )
    return path


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], Path]]:
    url = os.environ.get("PINFACTORY_TEST_REDIS_URL", "")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PINFACTORY_TEST_REDIS_URL is not set: run scripts/redis.sh")
        pytest.skip("PINFACTORY_TEST_REDIS_URL not set (scripts/redis.sh prints one)")
    folder = tmp_path_factory.mktemp("cache-workers")
    team = team_file(folder, url)
    with served(team, log=folder / "gateways.log", count=2) as gateways:
        yield [g.url for g in gateways], folder / "ledger.db"


def ask(url: str, key: str, text: str) -> tuple[str, str, dict[str, Any]]:
    """(request id, answer, pinfactory block)."""
    with OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": text}]
        )
    reply = raw.parse()
    return (
        raw.headers["x-request-id"],
        reply.choices[0].message.content or "",
        (reply.model_extra or {})["pinfactory"],
    )


def cost_nusd(ledger: Path, request_id: str) -> int:
    db = sqlite3.connect(ledger)
    try:
        row = db.execute(
            "SELECT cost_nusd FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        assert row is not None
        return int(row[0])
    finally:
        db.close()


def test_one_workers_answer_serves_the_others_repeat(workers: tuple[list[str], Path]) -> None:
    (a, b), ledger = workers
    first, answer, block = ask(a, SALES, "17 * 3")
    assert "cache" not in block and cost_nusd(ledger, first) == 10_000_000
    again, same, hit = ask(b, SALES, "17 * 3")
    assert same == answer
    assert hit["cache"]["kind"] == "exact" and hit["cache"]["source"] == first
    assert cost_nusd(ledger, again) == 0
    assert "cache" not in ask(b, SUPPORT, "17 * 3")[2]  # never across units


def test_a_paraphrase_on_the_other_worker_is_a_semantic_hit(
    workers: tuple[list[str], Path],
) -> None:
    (a, b), _ = workers
    first, answer, _ = ask(b, SALES, "what is 23 * 2")
    _, same, block = ask(a, SALES, "what is 23*2?")
    assert same == answer
    assert block["cache"]["kind"] == "semantic" and block["cache"]["source"] == first
    assert 0.8 <= block["cache"]["similarity"] < 1.0
    assert "cache" not in ask(a, SALES, "what is 23 * 3")[2]  # other numbers never hit
