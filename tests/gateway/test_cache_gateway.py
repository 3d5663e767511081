"""The response cache on a real gateway: a repeat is answered from the cache at no cost,
booked on the member with the saving sealed; other units, ``cache: false`` and other
numbers miss; a semantic hit is verified like any answer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import parse_team

SALES, SUPPORT = "sk-sales-0001", "sk-support-0002"


def team_text(ledger: Path) -> str:
    return f"""
name: cached
members:
  - {{name: calc, kind: calculator, price: {{per_call: 0.01}}}}
routing: {{kind: rules, fallback: calc}}
cache: {{semantic: true, threshold: 0.8}}
verification:
  verifiers: ["tests.gateway.test_feedback:SumsOnly"]
  only_with_evidence: false
  min_confidence: 0.3     # the grounding check finds no documents here: 0.48, kept
keys:
  - {{key: {SALES}, unit: sales, user: alice}}
  - {{key: {SUPPORT}, unit: support, user: bob}}
ledger: {{path: '{ledger}'}}
"""


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path_factory.mktemp("cached") / "ledger.db"
    with serve_in_thread(create_app(parse_team(team_text(ledger), "cached.yaml", {}))) as url:
        yield url, ledger


def ask(url: str, key: str, text: str, **extra: Any) -> tuple[str, str, dict[str, Any]]:
    """(request id, answer, pinfactory block)."""
    with OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": text}], extra_body=extra or None
        )
    reply = raw.parse()
    block = (reply.model_extra or {})["pinfactory"]
    return raw.headers["x-request-id"], reply.choices[0].message.content or "", block


def audit(ledger: Path, request_id: str) -> dict[str, Any]:
    db = sqlite3.connect(ledger)
    try:
        rows = db.execute("SELECT kind, body FROM audit WHERE request_id = ?", (request_id,))
        return {kind: json.loads(body)["payload"] for kind, body in rows}
    finally:
        db.close()


def row(ledger: Path, request_id: str) -> tuple[Any, ...]:
    db = sqlite3.connect(ledger)
    try:
        found = db.execute(
            "SELECT member, cost_nusd, status FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        assert found is not None
        return tuple(found)
    finally:
        db.close()


def test_a_repeat_is_served_from_the_cache(cached: tuple[str, Path]) -> None:
    url, ledger = cached
    first, answer, block = ask(url, SALES, "12 * 7")
    assert "cache" not in block and row(ledger, first) == ("calc", 10_000_000, 200)
    again, same, hit = ask(url, SALES, "12 * 7")
    assert same == answer
    assert hit["cache"]["kind"] == "exact" and hit["cache"]["source"] == first
    assert hit["cost_usd"] == 0.0 and hit["member"] == "calc"
    assert row(ledger, again) == ("calc", 0, 200)  # booked on the member, at no cost
    sealed = audit(ledger, again)
    assert sealed["cache"]["saved_usd"] == "0.01"
    assert sealed["call"]["purpose"] == "cache"
    assert "verdict" in sealed  # verified like any answer


def test_other_units_opt_outs_and_other_numbers_miss(cached: tuple[str, Path]) -> None:
    url, _ = cached
    ask(url, SALES, "13 * 7")
    assert "cache" not in ask(url, SUPPORT, "13 * 7")[2]  # never across units
    assert "cache" not in ask(url, SALES, "13 * 7", cache=False)[2]
    assert "cache" not in ask(url, SALES, "13 * 8")[2]


def test_a_paraphrase_is_a_verified_semantic_hit(cached: tuple[str, Path]) -> None:
    url, ledger = cached
    first, answer, _ = ask(url, SALES, "what is 21 * 2")
    again, same, block = ask(url, SALES, "what is 21*2?")
    assert same == answer
    assert block["cache"]["kind"] == "semantic" and block["cache"]["source"] == first
    assert 0.8 <= block["cache"]["similarity"] < 1.0
    assert "sums-only" in block["verdict"]["verifier"]
    assert audit(ledger, again)["cache"]["kind"] == "semantic"


def test_cache_must_be_a_boolean(cached: tuple[str, Path]) -> None:
    url, _ = cached
    with (
        OpenAI(base_url=url + "/v1", api_key=SALES, max_retries=0) as client,
        pytest.raises(openai.BadRequestError) as refused,
    ):
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "1+1"}], extra_body={"cache": "no"}
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["param"] == "cache"
    assert "'cache' must be true or false" in body["message"]
