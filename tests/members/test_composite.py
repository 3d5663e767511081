"""Members made of members: fallback, cross-check and cascade, through the real gateway.

Each is called like any member (``model: <name>``); every inner call is booked on the
request and listed in the ``pinfactory`` block, and the ledger books their sum.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from openai import OpenAI

from pinfactory.errors import TeamFileError
from pinfactory.gateway import create_app
from pinfactory.gateway.server import free_port, serve_in_thread
from pinfactory.members import Completion, Member
from pinfactory.pipeline import build_members
from pinfactory.request import Request
from pinfactory.team import parse_team
from tests.pipeline.upstream import Counter, scripted_upstream


class SilentMember(Member):
    """Answers nothing at all: a cascade must escalate past it."""

    kind = "silent"

    async def complete(self, request: Request) -> Completion:
        return self.local_completion(request, "", model="silent")


def team_text(upstream: str, ledger: Path) -> str:
    return f"""
name: composed
members:
  - {{name: calc, kind: calculator, tier: tool, price: {{per_call: 0.001}}}}
  - name: gone
    kind: openai_http
    tier: remote
    settings: {{base_url: "http://127.0.0.1:{free_port()}/v1", model: x}}
  - name: words
    kind: openai_http
    tier: remote
    price: {{per_call: 0.01}}
    settings: {{base_url: "{upstream}/v1", model: words, default_max_tokens: 3}}
  - {{name: quiet, kind: 'tests.members.test_composite:SilentMember', tier: small,
      price: {{per_call: 0.0001}}}}
  - {{name: steady, kind: fallback, settings: {{members: [gone, calc]}}}}
  - {{name: checked, kind: cross_check, settings: {{members: [calc, words]}}}}
  - {{name: climb, kind: cascade, settings: {{members: [quiet, tier:tool]}}}}
routing: {{kind: rules, fallback: calc}}
ledger: {{path: '{ledger}'}}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenAI, Path]]:
    ledger = tmp_path_factory.mktemp("composite") / "ledger.db"
    with serve_in_thread(scripted_upstream(Counter())) as upstream:
        team = parse_team(team_text(upstream, ledger), "composed.yaml", {})
        with serve_in_thread(create_app(team)) as url:
            yield OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0), ledger


def last_cost(ledger: Path) -> Decimal:
    db = sqlite3.connect(ledger)
    try:
        nusd = db.execute("SELECT cost_nusd FROM requests ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return Decimal(nusd[0]) / Decimal(10**9)


def ask(client: OpenAI, model: str) -> dict[str, object]:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "6 * 7"}]
    )
    assert "42" in (reply.choices[0].message.content or "")
    return dict((reply.model_extra or {})["pinfactory"])


def test_a_fallback_list_answers_from_the_next_member(served: tuple[OpenAI, Path]) -> None:
    client, ledger = served
    block = ask(client, "steady")
    assert block["member"] == "steady"
    calls = block["calls"]
    assert isinstance(calls, list)
    assert [(c["member"], c["purpose"], c["error"]) for c in calls] == [
        ("gone", "answer", "member_failed"),
        ("calc", "fallback", None),
    ]
    assert last_cost(ledger) == Decimal("0.001")  # the failed attempt cost nothing


def test_a_fallback_list_streams_from_the_member_that_starts(served: tuple[OpenAI, Path]) -> None:
    client, _ = served
    chunks = list(
        client.chat.completions.create(
            model="steady", messages=[{"role": "user", "content": "6 * 7"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "42" in text
    block = (chunks[-1].model_extra or {})["pinfactory"]
    assert [c["member"] for c in block["calls"]] == ["gone", "calc"]


def test_a_cross_check_member_books_both_and_reports_the_disagreement(
    served: tuple[OpenAI, Path],
) -> None:
    client, ledger = served
    block = ask(client, "checked")
    calls = block["calls"]
    assert isinstance(calls, list)
    assert [(c["member"], c["purpose"]) for c in calls] == [
        ("calc", "answer"),
        ("words", "cross_check"),
    ]
    events = block["events"]
    assert isinstance(events, list) and events[0]["event"] == "disagreement"
    assert last_cost(ledger) == Decimal("0.011")


def test_a_cascade_member_escalates_past_an_empty_answer(served: tuple[OpenAI, Path]) -> None:
    client, ledger = served
    block = ask(client, "climb")
    calls = block["calls"]
    assert isinstance(calls, list)
    assert [(c["member"], c["purpose"]) for c in calls] == [("quiet", "answer"), ("calc", "tier")]
    assert last_cost(ledger) == Decimal("0.0011")


def test_a_composite_naming_no_member_fails_at_start_up(tmp_path: Path) -> None:
    team = parse_team(
        "members:\n"
        "  - {name: calc, kind: calculator}\n"
        "  - {name: loop, kind: fallback, settings: {members: [calc, nobody]}}\n"
        "routing: {kind: rules, fallback: calc}\n",
        "bad.yaml",
        {"PINFACTORY_LEDGER": str(tmp_path / "l.db")},
    )
    with pytest.raises(TeamFileError, match="'nobody' names no other member"):
        build_members(team)
