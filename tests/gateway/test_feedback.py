"""``POST /v1/feedback`` on a real gateway: stored, sealed, unit-checked, refused clearly,
and exported with verdicts and reviewers' decisions as one labelled-outcome table."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import open_ledger
from pinfactory.ledger.reviews import ReviewQueue
from pinfactory.members import Completion
from pinfactory.request import Document, Request
from pinfactory.team import load_team
from pinfactory.verify.base import Verdict

SALES, SUPPORT = "sk-sales-0001", "sk-support-0002"
runner = CliRunner()


class SumsOnly:
    """A house verifier: trusts answers with an equals sign, doubts the rest."""

    name = "sums-only"

    def check(
        self,
        request: Request,  # noqa: ARG002 (the Verifier protocol)
        completion: Completion,
        evidence: Sequence[Document],  # noqa: ARG002
    ) -> Verdict:
        if "=" in completion.text:
            return Verdict(0.9, "supported", self.name)
        return Verdict(0.2, "unsupported", self.name)


TEAM = f"""
name: judged
members:
  - {{name: calc, kind: calculator, price: {{per_call: 0.01}}}}
routing: {{kind: rules, fallback: calc}}
verification:
  verifiers: ["tests.gateway.test_feedback:SumsOnly"]
  only_with_evidence: false
keys:
  - {{key: {SALES}, unit: sales, user: alice}}
  - {{key: {SUPPORT}, unit: support, user: bob}}
"""


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("judged")
    path = folder / "team.yaml"
    path.write_text(TEAM + f"ledger: {{path: '{folder / 'ledger.db'}'}}\n")
    with serve_in_thread(create_app(load_team(path, {}))) as url:
        yield url, path


def ask(url: str, key: str, text: str = "2+2") -> tuple[str, str, dict[str, Any]]:
    """(request id, completion id, the verdict) of one answered request."""
    with OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": text}]
        )
    reply = raw.parse()
    return raw.headers["x-request-id"], reply.id, (reply.model_extra or {})["pinfactory"]["verdict"]


def send(url: str, key: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        url + "/v1/feedback",
        content=content,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        timeout=30,
    )


def rows(team: Path, sql: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(team.parent / "ledger.db")
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_feedback_is_stored_and_sealed(judged: tuple[str, Path]) -> None:
    url, team = judged
    request_id, completion_id, _ = ask(url, SALES)
    scored = send(url, SALES, {"request_id": request_id, "score": 0.25, "comment": "slow"})
    assert scored.status_code == 200, scored.text
    body = scored.json()
    assert body["object"] == "pinfactory.feedback"
    assert (body["request_id"], body["score"], body["thumbs"]) == (request_id, 0.25, None)
    thumbs = send(url, SALES, {"request_id": completion_id, "thumbs": "down"})
    assert thumbs.status_code == 200, thumbs.text
    assert (thumbs.json()["request_id"], thumbs.json()["score"]) == (request_id, 0.0)

    stored = rows(team, f"SELECT * FROM feedback WHERE request_id = '{request_id}' ORDER BY time")
    assert [(r["unit"], r["user"], r["score"], r["thumbs"], r["comment"]) for r in stored] == [
        ("sales", "alice", 0.25, None, "slow"),
        ("sales", "alice", 0.0, "down", None),
    ]
    sealed = rows(
        team, f"SELECT body FROM audit WHERE kind = 'feedback' AND request_id = '{request_id}'"
    )
    payloads = [json.loads(r["body"])["payload"] for r in sealed]
    assert [(p["score"], p["thumbs"]) for p in payloads] == [(0.25, None), (0.0, "down")]
    assert runner.invoke(app, ["audit", "verify", "--team", str(team)]).exit_code == 0


def test_another_units_request_is_not_found(judged: tuple[str, Path]) -> None:
    url, team = judged
    request_id, _, _ = ask(url, SALES)
    for key, rid in ((SUPPORT, request_id), (SALES, "req_000000000000000000000000")):
        refused = send(url, key, {"request_id": rid, "thumbs": "up"})
        assert refused.status_code == 404, refused.text
        error = refused.json()["error"]
        assert (error["param"], error["message"]) == ("request_id", f"no request '{rid}'")
    assert not rows(team, f"SELECT * FROM feedback WHERE request_id = '{request_id}'")


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"request_id": "r", "score": 1.5}, "score", "less than or equal to 1"),
        ({"request_id": "r", "score": -0.1}, "score", "greater than or equal to 0"),
        ({"request_id": "r", "score": "high"}, "score", "valid number"),
        ({"request_id": "r", "thumbs": "meh"}, "thumbs", "'up' or 'down'"),
        ({"request_id": "r"}, "score", "exactly one of 'score'"),
        ({"request_id": "r", "score": 1, "thumbs": "up"}, "score", "exactly one of 'score'"),
        ({"score": 1}, "request_id", "'request_id' is required"),
        ({"request_id": "r", "score": 1, "stars": 5}, "stars", "Extra inputs"),
        ({"request_id": "r", "score": 1, "comment": "x" * 4001}, "comment", "at most 4000"),
        ({"request_id": "r", "score": 1, "comment": "a\x00b"}, "comment", "NUL"),
        (b"not json", None, "not valid JSON"),
        ([1, 2], None, "must be a JSON object"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_field_and_recorded(
    judged: tuple[str, Path], body: Any, param: str | None, says: str
) -> None:
    url, team = judged
    refused = send(url, SALES, body)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == param
    assert says in error["message"]
    rid = refused.headers["x-request-id"]
    recorded = rows(team, f"SELECT * FROM requests WHERE request_id = '{rid}'")
    assert [(r["status"], r["model"], r["unit"]) for r in recorded] == [(400, "feedback", "sales")]


def test_export_joins_feedback_verdicts_and_reviews(
    judged: tuple[str, Path], tmp_path: Path
) -> None:
    url, team = judged
    liked, _, verdict = ask(url, SALES, "6*7")
    assert send(url, SALES, {"request_id": liked, "thumbs": "up"}).status_code == 200
    reviewed, _, doubted = ask(url, SUPPORT, "1+1")
    asyncio.run(review(team.parent / "ledger.db", reviewed))

    out = tmp_path / "outcomes.csv"
    result = runner.invoke(app, ["feedback", "export", "--team", str(team), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        table = list(csv.DictReader(handle))
    mine = [r for r in table if r["request_id"] in (liked, reviewed)]
    labels = sorted(
        (r["request_id"] == liked, r["source"], r["label"], float(r["quality"])) for r in mine
    )
    assert labels == [
        (False, "reviewer", "overridden", 0.0),
        (False, "verifier", doubted["label"], doubted["confidence"]),
        (True, "user", "up", 1.0),
        (True, "verifier", verdict["label"], verdict["confidence"]),
    ]
    for row in mine:
        assert (row["member"], row["router"], float(row["cost_usd"])) == ("calc", "rules", 0.01)
        assert float(row["propensity"]) == 1.0  # rules never explore
        assert row["prompt_digest"].startswith("sha256:")
    assert {r["unit"] for r in mine} == {"sales", "support"}

    users = tmp_path / "users.jsonl"
    only = ["feedback", "export", "--team", str(team), "--out", str(users), "--source", "user"]
    assert runner.invoke(app, only).exit_code == 0
    assert {json.loads(line)["source"] for line in users.read_text().splitlines()} == {"user"}
    wrong = runner.invoke(app, [*only[:-1], "crowd"])
    assert wrong.exit_code == 1
    assert "'crowd' is not a source" in wrong.output


async def review(ledger_path: Path, request_id: str) -> None:
    ledger = open_ledger(str(ledger_path))
    await ledger.open()
    try:
        queue = ReviewQueue(ledger)
        held = await queue.submit(
            request_id=request_id, unit="support", user="bob", prompt="1+1", member="calc",
            answer="1+1 = 2", reason="spot check", evidence=[],
        )  # fmt: skip
        await queue.override(held.id, "carol", "2", "say just the number")
    finally:
        await ledger.close()
