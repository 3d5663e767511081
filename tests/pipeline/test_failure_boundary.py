"""One failure boundary: every request ends in exactly one ledger row, whatever fails.

Through the real gateway with the official ``openai`` SDK (or httpx reading a stream
by hand, where the client must leave halfway), against a scripted upstream; SQLite and
PostgreSQL where money is booked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psycopg
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from pinfactory.cli import app as cli
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.members import Completion, Member
from pinfactory.request import Request
from pinfactory.team import Team, parse_team
from tests.pipeline.conftest import ledger_where, rows, wait_for_rows
from tests.pipeline.upstream import Counter

HI = [{"role": "user", "content": "say something long"}]


class FlakyMember(Member):
    """A plug-in member that streams one token, then breaks with its own exception."""

    kind = "flaky"

    async def complete(self, request: Request) -> Completion:
        return self.local_completion(request, "fine", model="flaky")

    async def stream(self, request: Request) -> AsyncIterator[str | Completion]:
        yield "first "
        raise RuntimeError(f"plug-in bug on {request.request_id}")


def team_text(upstream: str, where: str) -> str:
    return f"""
name: boundary
members:
  - {{name: calc, kind: calculator, price: {{per_call: 0.001}}}}
  - name: words
    kind: openai_http
    price: {{output_per_mtok: 1000}}
    settings: {{base_url: "{upstream}/v1", model: words}}
  - name: errmid
    kind: openai_http
    price: {{output_per_mtok: 1000}}
    settings: {{base_url: "{upstream}/v1", model: error-mid}}
  - name: slow
    kind: openai_http
    price: {{output_per_mtok: 1000}}
    settings: {{base_url: "{upstream}/v1", model: slow-stream}}
  - {{name: flaky, kind: 'tests.pipeline.test_failure_boundary:FlakyMember'}}
routing: {{kind: rules, fallback: calc}}
ledger: {{{where}}}
"""


@pytest.fixture
def gateway(upstream: tuple[str, Counter], location: str) -> Iterator[str]:
    team: Team = parse_team(team_text(upstream[0], ledger_where(location)), "b.yaml", {})
    with serve_in_thread(create_app(team)) as url:
        yield url


def sdk(url: str) -> OpenAI:
    return OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_a_member_that_breaks_after_its_first_token(gateway: str, location: str) -> None:
    stream = sdk(gateway).chat.completions.create(model="flaky", messages=HI, stream=True)
    seen: list[Any] = []
    with pytest.raises(openai.APIError, match=r"internal error \(RuntimeError\)"):
        seen.extend(stream)  # the SDK raises on the error event
    assert "first " in [c.choices[0].delta.content for c in seen if c.choices]
    assert all(c.choices[0].finish_reason != "stop" for c in seen if c.choices)
    (row,) = rows(location)
    assert row["status"] == 500 and row["member"] == "flaky"
    assert row["output_tokens"] >= 1  # the token it sent is counted


def test_an_error_event_inside_a_200_stream(gateway: str, location: str) -> None:
    stream = sdk(gateway).chat.completions.create(model="errmid", messages=HI, stream=True)
    seen: list[Any] = []
    with pytest.raises(openai.APIError, match="overloaded mid-stream"):
        seen.extend(stream)
    assert "half " in [c.choices[0].delta.content for c in seen if c.choices]
    assert "stop" not in [c.choices[0].finish_reason for c in seen if c.choices]
    (row,) = rows(location)
    assert row["status"] == 502 and row["member"] == "errmid"
    assert row["output_tokens"] > 0 and row["cost_nusd"] > 0  # "half an answer" was paid for


def test_a_client_that_leaves_is_booked_499_with_what_it_was_sent(
    gateway: str, location: str
) -> None:
    body = {"model": "slow", "messages": HI, "stream": True}
    with (
        httpx.Client(base_url=gateway) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        deltas = [line for line, _ in zip(lines, range(12), strict=False) if "word" in line]
    # leaving the block closed the connection halfway through the 400 words
    (row,) = wait_for_rows(location, 1)
    assert row["status"] == 499 and row["member"] == "slow"
    assert row["output_tokens"] >= len(deltas) > 0
    assert row["cost_nusd"] > 0


def test_input_the_ledger_cannot_store_is_refused_before_any_member(
    gateway: str, location: str, upstream: tuple[str, Counter]
) -> None:
    counter = upstream[1]
    before = counter.calls
    with httpx.Client(base_url=gateway) as client:
        bad_user = client.post(
            "/v1/chat/completions", json={"model": "words", "messages": HI, "user": "a\x00b"}
        )
        bad_model = client.post("/v1/chat/completions", json={"model": "wo\x00rds", "messages": HI})
        long_id = client.post(
            "/v1/chat/completions",
            json={"model": "words", "messages": HI},
            headers={"x-request-id": "x" * 6000},
        )
    assert [r.status_code for r in (bad_user, bad_model, long_id)] == [400, 400, 400]
    assert [r.json()["error"]["param"] for r in (bad_user, bad_model, long_id)] == [
        "user",
        "model",
        "x-request-id",
    ]
    assert "NUL" in bad_user.json()["error"]["message"]
    assert counter.calls == before  # nothing was paid for
    recorded = rows(location)
    assert [r["status"] for r in recorded] == [400, 400, 400]
    assert all("\x00" not in (r["user"] + r["model"]) for r in recorded)


def test_reused_client_ids_stay_two_requests(gateway: str, location: str) -> None:
    client = sdk(gateway)
    raw = client.chat.completions.with_raw_response
    replies = [
        raw.create(
            model="calc",
            messages=[{"role": "user", "content": "2 + 2"}],
            extra_headers={"X-Request-Id": "client-42"},
        )
        for _ in range(2)
    ]
    ids = [r.headers["x-request-id"] for r in replies]
    assert len(set(ids)) == 2 and all(i.startswith("req_") for i in ids)
    assert [r.headers["x-correlation-id"] for r in replies] == ["client-42", "client-42"]
    parsed = [r.parse() for r in replies]
    assert parsed[0].id != parsed[1].id
    assert [(p.model_extra or {})["pinfactory"]["correlation_id"] for p in parsed] == [
        "client-42",
        "client-42",
    ]
    recorded = rows(location)
    assert sorted(r["request_id"] for r in recorded) == sorted(ids)
    assert {r["correlation_id"] for r in recorded} == {"client-42"}


def test_an_edited_cost_is_named_by_audit_verify(
    gateway: str, location: str, tmp_path: Path, upstream: tuple[str, Counter]
) -> None:
    client = sdk(gateway)
    for text in ("1 + 1", "2 + 2", "3 + 3"):
        client.chat.completions.create(model="calc", messages=[{"role": "user", "content": text}])
    team = tmp_path / "team.yaml"
    team.write_text(team_text(upstream[0], ledger_where(location)))
    runner = CliRunner()
    intact = runner.invoke(cli, ["audit", "verify", "--team", str(team)])
    assert intact.exit_code == 0, intact.output
    second = rows(location)[1]
    update = "UPDATE requests SET cost_nusd = cost_nusd * 1000 WHERE seq = "
    if location.startswith("postgres"):
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(update + str(second["seq"]))
    else:
        db = sqlite3.connect(location)
        db.execute(update + str(second["seq"]))
        db.commit()
        db.close()
    broken = runner.invoke(cli, ["audit", "verify", "--team", str(team)])
    assert broken.exit_code == 1
    output = " ".join(broken.output.split())
    assert f"ledger row {second['seq']}" in output
    assert second["request_id"] in output and "cost_nusd" in output
