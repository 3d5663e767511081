"""The ``queue`` policy end to end: an exhausted quota or budget holds the request for a person.

openai SDK -> gateway -> quota (or budget) exhausted -> review queue; an admin approves over
``POST /admin/reviews/{id}`` and the request runs on its member past the limit (the spend is
still booked), or overrides and no member is called; the unit polls ``GET /v1/reviews/{id}``.
Both ledger backends.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import LedgerEntry, open_ledger
from pinfactory.ledger.base import Review, to_nano
from pinfactory.routing.quotas import window_start
from pinfactory.team import load_team

runner = CliRunner()
SALES, SUPPORT, ADMIN = "sk-sales-0001", "sk-support-0002", "sk-ops-admin-03"
QUOTA_KEY, BUDGET_KEY = "quota:orders-daily:sales", "budget:support:day"
HELD = "waiting for a person's approval to spend"


def team_text(location: str, reviews: str = "{mode: poll}") -> str:
    where = f"dsn: '{location}'" if location.startswith("postgresql") else f"path: '{location}'"
    return f"""
name: queued
members:
  - {{name: calc, kind: calculator, tier: tool, price: {{per_call: 0.01}}}}
  - {{name: orders, kind: orders, tier: frontier, price: {{per_call: 0.02}}}}
routing:
  kind: rules
  fallback: calc
  quotas:
    - {{name: orders-daily, member: orders, unit: sales, period: day, max_calls: 1,
       on_exhausted: queue}}
budgets:
  - {{unit: support, period: day, max_spend_usd: 0.015, on_exhausted: queue}}
reviews: {reviews}
keys:
  - {{key: {SALES}, unit: sales, user: alice}}
  - {{key: {SUPPORT}, unit: support, user: bob}}
  - {{key: {ADMIN}, unit: ops, user: carol, admin: true}}
ledger: {{{where}}}
"""


@pytest.fixture
def gateway(location: str, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    path = tmp_path / "queued.yaml"
    path.write_text(team_text(location))
    with serve_in_thread(create_app(load_team(path, {}))) as url:
        yield url, path, location


def ask(url: str, key: str, model: str, question: str) -> tuple[str, str, dict[str, Any]]:
    """(request id, content, pinfactory block) of one chat completion."""
    with OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": question}]
        )
        reply = raw.parse()
    block = (reply.model_extra or {})["pinfactory"]
    return raw.headers["x-request-id"], reply.choices[0].message.content or "", block


def admin(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN}"}
    return httpx.request(method, url + path, headers=headers, json=body, timeout=30)


def poll(url: str, key: str, review_id: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{url}/v1/reviews/{review_id}", headers={"authorization": f"Bearer {key}"}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def ledger_state(location: str, key: str, period: str = "day") -> tuple[list[LedgerEntry], Any]:
    """The ledger's rows (newest first) and the counter's (calls, nano-dollars)."""

    async def read() -> tuple[list[LedgerEntry], Any]:
        ledger = open_ledger(location)
        await ledger.open()
        try:
            usage = await ledger.usage(key, window_start(period))  # type: ignore[arg-type]
            return await ledger.entries(1000), usage
        finally:
            await ledger.close()

    return asyncio.run(read())


def explain(team: Path, request_id: str) -> str:
    story = runner.invoke(app, ["audit", "explain", request_id, "--team", str(team)])
    assert story.exit_code == 0, story.output
    return story.output


def test_an_exhausted_quota_queues_and_approval_runs_the_member(
    gateway: tuple[str, Path, str],
) -> None:
    url, team, location = gateway
    order = "where is order 1042?"
    _, first, block = ask(url, SALES, "orders", order)  # the one call the quota allows
    assert "review" not in block and "1042" in first

    approved_req, text, block = ask(url, SALES, "orders", order)
    review = block["review"]
    assert review["status"] == "pending" and review["poll"] == f"/v1/reviews/{review['id']}"
    assert f"{HELD} (review {review['id']})" in text and "1042" not in text
    overridden_req, _, second = ask(url, SALES, "orders", "cancel order 1043")
    approved, overridden = review["id"], second["review"]["id"]

    shown = admin(url, "GET", f"/admin/reviews/{approved}").json()
    assert shown["reason"] == (
        "quota 'orders-daily' (1 calls a day on member 'orders') exhausted for unit 'sales': "
        "awaiting approval to spend"
    )
    assert shown["member"] == "orders" and shown["answer"] == "" and shown["prompt"] == order
    assert shown["held"]["messages"] == [{"role": "user", "content": order}]
    assert poll(url, SALES, approved) == {
        **poll(url, SALES, approved),
        "status": "pending",
        "answer": None,
    }
    _, usage_before = ledger_state(location, QUOTA_KEY)
    assert usage_before == (1, to_nano(Decimal("0.02")))  # the queued requests spent nothing

    ok = admin(url, "POST", f"/admin/reviews/{approved}", {"action": "approve"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "approved" and ok.json()["reviewer"] == "carol"
    again = admin(url, "POST", f"/admin/reviews/{approved}", {"action": "approve"})
    assert again.status_code == 409 and "already decided" in again.json()["error"]["message"]
    replaced = admin(
        url, "POST", f"/admin/reviews/{overridden}", {"action": "override", "answer": "Not now."}
    )
    assert replaced.status_code == 200 and replaced.json()["status"] == "overridden"

    released = poll(url, SALES, approved)
    assert released["status"] == "approved" and released["answer"] == first  # the member's own
    assert poll(url, SALES, overridden)["answer"] == "Not now."

    entries, usage = ledger_state(location, QUOTA_KEY)
    assert usage == (2, 2 * to_nano(Decimal("0.02")))  # past the limit, and booked
    runs = [e for e in entries if e.request_id == approved_req]
    assert sorted((e.member, e.cost_usd) for e in runs if e.member) == [("orders", Decimal("0.02"))]
    assert [e.cost_usd for e in runs if e.member is None] == [0]  # the queued row
    held = [e for e in entries if e.request_id == overridden_req]
    assert [(e.member, e.cost_usd) for e in held] == [(None, 0)]  # no member call at all

    story = explain(team, approved_req)
    assert "final: member orders (approved by reviewer carol)" in story
    assert "exhausted for unit 'sales': awaiting approval to spend" in story
    assert "review.queued" in story and "review.executed" in story
    assert "final: reviewer carol (override)" in explain(team, overridden_req)
    verified = runner.invoke(app, ["audit", "verify", "--team", str(team)])
    assert verified.exit_code == 0, verified.output

    with OpenAI(base_url=url + "/v1", api_key=SALES, max_retries=0) as client:
        chunks = list(
            client.chat.completions.create(
                model="orders", messages=[{"role": "user", "content": order}], stream=True
            )
        )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert HELD in streamed  # a stream past the limit is queued like a plain request
    assert (chunks[-1].model_extra or {})["pinfactory"]["review"]["status"] == "pending"


def test_an_exhausted_budget_queues_and_the_cli_can_approve_it(
    gateway: tuple[str, Path, str],
) -> None:
    url, team, location = gateway
    _, first, block = ask(url, SUPPORT, "calc", "12 times 7")  # $0.01 of the $0.015
    assert first == "12 * 7 = 84" and "review" not in block
    by_api_req, text, block = ask(url, SUPPORT, "calc", "6 times 7")
    assert HELD in text and block["review"]["status"] == "pending"
    by_api = block["review"]["id"]
    shown = admin(url, "GET", f"/admin/reviews/{by_api}").json()
    assert shown["reason"] == (
        "budget 'support/day' exhausted for unit 'support': awaiting approval to spend"
    )

    ok = admin(url, "POST", f"/admin/reviews/{by_api}", {"action": "approve", "reviewer": "dave"})
    assert ok.status_code == 200, ok.text
    assert poll(url, SUPPORT, by_api)["answer"] == "6 * 7 = 42"
    _, usage = ledger_state(location, BUDGET_KEY)
    assert usage == (2, to_nano(Decimal("0.02")))  # the approved spend is counted past $0.015
    assert "final: member calc (approved by reviewer dave)" in explain(team, by_api_req)

    # from the CLI: it opens the team's pipeline and runs the held request itself
    by_cli_req, _, block = ask(url, SUPPORT, "calc", "9 times 9")
    by_cli = block["review"]["id"]
    done = runner.invoke(
        app, ["review", "approve", by_cli, "-r", "erin", "--team", str(team), "--json"]
    )
    assert done.exit_code == 0, done.output
    assert poll(url, SUPPORT, by_cli) == {
        **poll(url, SUPPORT, by_cli),
        "status": "approved",
        "answer": "9 * 9 = 81",
    }
    entries, usage = ledger_state(location, BUDGET_KEY)
    assert usage == (3, to_nano(Decimal("0.03")))
    assert [e.cost_usd for e in entries if e.request_id == by_cli_req and e.member] == [
        Decimal("0.01")
    ]
    assert "final: member calc (approved by reviewer erin)" in explain(team, by_cli_req)
    # the other unit never sees it
    other = httpx.get(
        f"{url}/v1/reviews/{by_cli}", headers={"authorization": f"Bearer {SALES}"}, timeout=30
    )
    assert other.status_code == 404


def test_wait_mode_holds_the_client_until_the_approved_answer(tmp_path: Path) -> None:
    path = tmp_path / "queued.yaml"
    path.write_text(team_text(str(tmp_path / "ledger.db"), "{mode: wait, timeout_s: 30}"))
    with serve_in_thread(create_app(load_team(path, {}))) as url:
        ask(url, SUPPORT, "calc", "12 times 7")
        result: dict[str, Any] = {}
        waiting = threading.Thread(
            target=lambda: result.update(
                zip(("id", "text", "block"), ask(url, SUPPORT, "calc", "6 times 7"), strict=True)
            )
        )
        waiting.start()
        pending: list[dict[str, Any]] = []
        for _ in range(200):
            pending = admin(url, "GET", "/admin/reviews?status=pending").json()["data"]
            if pending:
                break
            waiting.join(0.05)
        assert len(pending) == 1 and pending[0]["held"] is not None
        assert waiting.is_alive()  # the client is still waiting
        ok = admin(url, "POST", f"/admin/reviews/{pending[0]['id']}", {"action": "approve"})
        assert ok.status_code == 200, ok.text
        waiting.join(30)
    assert result["text"] == "6 * 7 = 42"
    assert result["block"]["review"] == {
        **result["block"]["review"],
        "status": "approved",
        "reviewer": "carol",
    }


OLD_REVIEWS = """CREATE TABLE reviews (
    id TEXT PRIMARY KEY, request_id TEXT NOT NULL, unit TEXT NOT NULL, "user" TEXT NOT NULL,
    created REAL NOT NULL, reason TEXT NOT NULL, evidence TEXT NOT NULL, prompt TEXT NOT NULL,
    member TEXT NOT NULL, answer TEXT NOT NULL, verdict TEXT NOT NULL, status TEXT NOT NULL,
    reviewer TEXT, final_answer TEXT, note TEXT, decided REAL)"""


def test_a_ledger_from_before_the_queue_policy_gains_the_held_column(location: str) -> None:
    """Opening an older ledger adds ``reviews.held``; its old reviews read as not held."""
    old = ("rev_old", "req_old", "sales", "", 1.0, "r", "null", "p", "calc", "a", "null")
    row = (*old, "pending", None, None, None, None)
    if location.startswith("postgresql"):
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute(OLD_REVIEWS.replace("REAL", "DOUBLE PRECISION"))
            conn.execute(f"INSERT INTO reviews VALUES ({', '.join(['%s'] * 16)})", row)
    else:
        with sqlite3.connect(location) as conn:
            conn.execute(OLD_REVIEWS)
            conn.execute(f"INSERT INTO reviews VALUES ({', '.join('?' * 16)})", row)

    async def reopen() -> tuple[Review | None, Review | None]:
        for _ in range(2):  # the migration is safe to run again
            ledger = open_ledger(location)
            await ledger.open()
            try:
                if await ledger.review("rev_new") is None:
                    held = {"member": "calc"}
                    new = Review("rev_new", "req_new", "sales", "", 2.0, "r", None, "p", "calc", "")
                    await ledger.add_review(replace(new, held=held))
                found = await ledger.review("rev_old"), await ledger.review("rev_new")
            finally:
                await ledger.close()
        return found

    before, after = asyncio.run(reopen())
    assert before is not None and before.held is None and before.answer == "a"
    assert after is not None and after.held == {"member": "calc"}
