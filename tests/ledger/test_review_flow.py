"""The review flow end to end: openai SDK -> gateway -> verifier -> review queue -> reviewer.

A team whose verifier sends low-confidence answers to a person (``on_low_confidence:
review``, poll mode). The client gets a pending message and a review id; an admin approves
one answer and overrides another over ``POST /admin/reviews/{id}``; the unit polls
``GET /v1/reviews/{id}`` for the decided answer, another unit cannot see it; the CLI then
exports the decisions, names the reviewer as final and verifies the chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import load_team

runner = CliRunner()
SALES, SUPPORT, ADMIN = "sk-sales-0001", "sk-support-0002", "sk-ops-admin-03"
# the calculator answers 84; the request's own document says 48: the verifier doubts it
PUZZLE = [{"title": "puzzle", "text": "The answer to twelve times seven is 48 in this puzzle."}]


def team_text(location: str) -> str:
    where = f"dsn: '{location}'" if location.startswith("postgresql") else f"path: '{location}'"
    return f"""
name: reviewed
members:
  - {{name: calc, kind: calculator, tier: tool, price: {{per_call: 0.01}}}}
  - {{name: docs, kind: retrieval, tier: frontier}}
routing: {{kind: rules, fallback: calc}}
verification:
  min_confidence: 0.6
  on_low_confidence: review
reviews: {{mode: poll}}
keys:
  - {{key: {SALES}, unit: sales, user: alice}}
  - {{key: {SUPPORT}, unit: support, user: bob}}
  - {{key: {ADMIN}, unit: ops, user: carol, admin: true}}
ledger: {{{where}, durability: group}}
"""


@pytest.fixture
def gateway(location: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    path = tmp_path / "reviewed.yaml"
    path.write_text(team_text(location))
    with serve_in_thread(create_app(load_team(path, {}))) as url:
        yield url, path


def ask(url: str, key: str, question: str, **extra: Any) -> tuple[str, str, dict[str, Any]]:
    """(request id, content, pinfactory block) of one chat completion."""
    with OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="calc", messages=[{"role": "user", "content": question}], extra_body=extra
        )
        reply = raw.parse()
    block = (reply.model_extra or {})["pinfactory"]
    return raw.headers["x-request-id"], reply.choices[0].message.content or "", block


def decide(url: str, review_id: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/admin/reviews/{review_id}",
        headers={"authorization": f"Bearer {ADMIN}"},
        json=body,
        timeout=30,
    )


def poll(url: str, key: str, review_id: str) -> httpx.Response:
    return httpx.get(
        f"{url}/v1/reviews/{review_id}", headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def test_a_held_answer_is_decided_by_a_reviewer_and_polled_by_its_unit(
    gateway: tuple[str, Path],
) -> None:
    url, team = gateway
    held: dict[str, tuple[str, str]] = {}  # question -> (request id, review id)
    for question in ("12 times 7", "7 times 12"):
        request_id, text, block = ask(url, SALES, question, documents=PUZZLE)
        review = block["review"]
        assert review["status"] == "pending" and review["poll"] == f"/v1/reviews/{review['id']}"
        assert f"waiting for human review (review {review['id']})" in text
        assert "= 84" not in text  # the doubted answer is withheld
        assert block["escalation"]["kind"] == "review"
        held[question] = (request_id, review["id"])
    (approved_req, approved), (overridden_req, overridden) = held.values()

    pending = poll(url, SALES, approved).json()
    assert pending["status"] == "pending" and pending["answer"] is None

    # a unit key cannot decide; the admin key can, once
    refused = httpx.post(
        f"{url}/admin/reviews/{approved}",
        headers={"authorization": f"Bearer {SALES}"},
        json={"action": "approve"},
    )
    assert refused.status_code == 403
    ok = decide(url, approved, {"action": "approve", "note": "the document is a trick"})
    assert ok.status_code == 200 and ok.json()["reviewer"] == "carol"
    again = decide(url, approved, {"action": "approve"})
    assert again.status_code == 409 and "already decided" in again.json()["error"]["message"]
    replaced = decide(url, overridden, {"action": "override", "answer": "12 x 7 = 84."})
    assert replaced.status_code == 200 and replaced.json()["status"] == "overridden"

    first = poll(url, SALES, approved).json()
    assert first["status"] == "approved" and first["answer"] == "12 * 7 = 84"
    second = poll(url, SALES, overridden).json()
    assert second == {**second, "status": "overridden", "answer": "12 x 7 = 84."}
    assert second["request_id"] == overridden_req
    # another unit's key: as if the review did not exist
    other = poll(url, SUPPORT, overridden)
    assert other.status_code == 404 and overridden not in other.text.replace(
        f"no review '{overridden}'", ""
    )

    exported = runner.invoke(app, ["review", "export", "--team", str(team)])
    assert exported.exit_code == 0, exported.output
    rows = {r["review_id"]: r for r in map(json.loads, exported.output.splitlines())}
    assert rows[approved]["label"] == "accepted" and rows[approved]["reviewer"] == "carol"
    assert rows[overridden]["label"] == "rejected"
    assert rows[overridden]["final_answer"] == "12 x 7 = 84."
    assert rows[overridden]["prompt"] == "7 times 12" and "84" in rows[overridden]["answer"]

    story = runner.invoke(app, ["audit", "explain", overridden_req, "--team", str(team)])
    assert story.exit_code == 0, story.output
    assert "final: reviewer carol (override)" in story.output
    assert "answer overridden by reviewer carol" in story.output
    assert "review.queued" in story.output and "review.overridden" in story.output
    approval = runner.invoke(app, ["audit", "explain", approved_req, "--team", str(team)])
    assert "final: member calc (approved by reviewer carol)" in approval.output

    verified = runner.invoke(app, ["audit", "verify", "--team", str(team)])
    assert verified.exit_code == 0, verified.output
    assert "entries checked" in verified.output


def test_a_stream_is_verified_and_held_for_review_like_a_plain_request(
    gateway: tuple[str, Path],
) -> None:
    """On a verifying team a stream is checked whole first, so a doubtful answer is held."""
    url, team = gateway
    client = OpenAI(base_url=url + "/v1", api_key=SALES, max_retries=0)
    with (
        client,
        client.chat.completions.with_streaming_response.create(
            model="calc",
            messages=[{"role": "user", "content": "12 times 7"}],
            stream=True,
            extra_body={"documents": PUZZLE},
        ) as raw,
    ):
        request_id = raw.headers["x-request-id"]
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("This answer is waiting for human review")  # not "12 * 7 = 84"
    review = (chunks[-1].model_extra or {})["pinfactory"]["review"]
    assert review["status"] == "pending"

    queued = httpx.get(
        f"{url}/admin/reviews?status=all", headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
    ).json()
    held = [r for r in queued["data"] if r["request_id"] == request_id]
    assert [r["id"] for r in held] == [review["id"]]
    assert held[0]["answer"] == "12 * 7 = 84"  # what the reviewer judges
    story = runner.invoke(app, ["audit", "explain", request_id, "--team", str(team)])
    assert story.exit_code == 0, story.output
    assert "stream=True" in story.output and "review.queued" in story.output
