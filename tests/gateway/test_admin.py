"""Access control: unit keys reach only /v1 and their own unit's data; /admin needs admin."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import open_ledger
from pinfactory.ledger.reviews import ReviewQueue
from pinfactory.team import parse_team

TEAM = """\
name: governed
members:
  - {name: calculator, kind: calculator, price: {per_call: 0.01}}
routing: {kind: rules, fallback: calculator}
keys:
  - {key: sk-sales-0001, unit: sales, user: alice}
  - {key: sk-support-0002, unit: support, user: bob}
  - {key: sk-admin-0003, unit: ops, user: carol, admin: true}
  - {key: sk-gone-0004, unit: sales, user: mallory, revoked: true}
"""
SALES, SUPPORT, ADMIN, REVOKED = "sk-sales-0001", "sk-support-0002", "sk-admin-0003", "sk-gone-0004"


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def submit(ledger_path: Path, unit: str) -> str:
    ledger = open_ledger(str(ledger_path))
    await ledger.open()
    try:
        review = await ReviewQueue(ledger).submit(
            request_id=f"req_{unit}",
            unit=unit,
            user="",
            prompt="6 * 7",
            member="calculator",
            answer="6 * 7 = 42",
            reason="low confidence",
            evidence=["no passage"],
        )
        return review.id
    finally:
        await ledger.close()


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path_factory.mktemp("governed") / "ledger.db"
    team = parse_team(TEAM, "governed.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        for key, tags in ((SALES, "q2,promo"), (SALES, "q2"), (SUPPORT, "")):
            client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
            client.chat.completions.create(
                model="auto",
                messages=[{"role": "user", "content": "2+2"}],
                metadata={"tags": tags} if tags else None,
            )
        yield url, ledger


def test_unit_keys_cannot_reach_admin_endpoints(governed: tuple[str, Path]) -> None:
    url, ledger = governed
    review = asyncio.run(submit(ledger, "sales"))
    for path in (
        "/admin/costs",
        "/admin/reviews",
        f"/admin/reviews/{review}",
        "/admin/audit/verify",
    ):
        reply = httpx.get(url + path, headers=auth(SALES))
        assert reply.status_code == 403, path
        assert reply.json()["error"]["code"] == "forbidden"
    decide = httpx.post(
        url + f"/admin/reviews/{review}", headers=auth(SALES), json={"action": "approve"}
    )
    assert decide.status_code == 403
    assert httpx.get(url + "/admin/costs").status_code == 401


def test_admin_reads_costs_by_every_grouping_as_json_and_csv(governed: tuple[str, Path]) -> None:
    url, _ = governed
    units = httpx.get(url + "/admin/costs?by=unit", headers=auth(ADMIN)).json()["data"]
    spend = {row["key"]: row for row in units}
    assert spend["sales"]["requests"] == 2 and spend["sales"]["cost_usd"] == "0.02"
    assert spend["support"]["cost_usd"] == "0.01"
    tags = httpx.get(url + "/admin/costs?by=tag", headers=auth(ADMIN)).json()["data"]
    assert {r["key"]: r["requests"] for r in tags} == {"q2": 2, "promo": 1, "-": 1}
    users = httpx.get(url + "/admin/costs?by=user&unit=sales", headers=auth(ADMIN)).json()
    assert [r["key"] for r in users["data"]] == ["alice"]
    future = httpx.get(url + "/admin/costs?since=2999-01-01", headers=auth(ADMIN)).json()
    assert future["data"] == []
    text = httpx.get(url + "/admin/costs?by=member&format=csv", headers=auth(ADMIN))
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert rows[0]["member"] == "calculator" and rows[0]["cost_usd"] == "0.03"


def test_a_unit_reads_only_its_own_costs(governed: tuple[str, Path]) -> None:
    url, _ = governed
    mine = httpx.get(url + "/v1/costs?by=member", headers=auth(SUPPORT)).json()
    assert mine["unit"] == "support"
    assert mine["data"][0]["requests"] == 1 and mine["data"][0]["cost_usd"] == "0.01"
    other = httpx.get(url + "/v1/costs?unit=sales", headers=auth(SUPPORT))
    assert other.status_code == 403


def test_a_unit_polls_only_its_own_reviews(governed: tuple[str, Path]) -> None:
    url, ledger = governed
    review = asyncio.run(submit(ledger, "support"))
    assert httpx.get(url + f"/v1/reviews/{review}", headers=auth(SALES)).status_code == 404
    pending = httpx.get(url + f"/v1/reviews/{review}", headers=auth(SUPPORT)).json()
    assert pending["status"] == "pending" and pending["answer"] is None
    listed = httpx.get(url + "/admin/reviews?unit=support", headers=auth(ADMIN)).json()["data"]
    assert [r["id"] for r in listed] == [review]
    shown = httpx.get(url + f"/admin/reviews/{review}", headers=auth(ADMIN)).json()
    assert shown["evidence"] == ["no passage"]
    done = httpx.post(
        url + f"/admin/reviews/{review}",
        headers=auth(ADMIN),
        json={"action": "override", "answer": "forty-two", "note": "words"},
    )
    assert done.status_code == 200 and done.json()["reviewer"] == "carol"
    decided = httpx.get(url + f"/v1/reviews/{review}", headers=auth(SUPPORT)).json()
    assert decided["status"] == "overridden" and decided["answer"] == "forty-two"
    again = httpx.post(
        url + f"/admin/reviews/{review}", headers=auth(ADMIN), json={"action": "approve"}
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    explained = httpx.get(url + "/admin/audit/req_support", headers=auth(ADMIN)).json()
    assert explained["final"] == "reviewer carol (override)"
    chain = httpx.get(url + "/admin/audit/verify", headers=auth(ADMIN)).json()
    assert chain["intact"] and chain["checked"] > 10


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("GET", "/admin/costs?by=planet", None, 400, "by"),
        ("GET", "/admin/costs?since=yesterday", None, 400, "since"),
        ("GET", "/admin/costs?format=xml", None, 400, "format"),
        ("GET", "/admin/costs?unit=marketing", None, 404, "unit"),
        ("GET", "/admin/reviews?status=maybe", None, 400, "status"),
        ("GET", "/admin/reviews?limit=-3", None, 400, "limit"),
        ("GET", "/admin/reviews/rev_missing", None, 404, "review_id"),
        ("POST", "/admin/reviews/rev_missing", {"action": "approve"}, 404, "review_id"),
        ("POST", "/admin/reviews/rev_missing", {"action": "shrug"}, 400, "action"),
        ("POST", "/admin/reviews/rev_missing", {"action": "override"}, 400, "answer"),
        ("POST", "/admin/reviews/rev_missing", b"{not json", 400, None),
        ("GET", "/admin/audit/req_never", None, 404, "request_id"),
    ],
)
def test_malformed_admin_requests_get_clear_errors(
    governed: tuple[str, Path],
    method: str,
    path: str,
    body: object,
    status: int,
    param: str | None,
) -> None:
    url, _ = governed
    kwargs: dict[str, object] = {"content": body} if isinstance(body, bytes) else {"json": body}
    reply = httpx.request(method, url + path, headers=auth(ADMIN), **kwargs)  # type: ignore[arg-type]
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["param"] == param and error["message"]


def test_a_revoked_key_is_refused_while_others_are_served(governed: tuple[str, Path]) -> None:
    url, _ = governed
    revoked = OpenAI(base_url=url + "/v1", api_key=REVOKED, max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        revoked.chat.completions.create(model="auto", messages=[{"role": "user", "content": "1+1"}])
    ok = OpenAI(base_url=url + "/v1", api_key=SALES, max_retries=0)
    reply = ok.chat.completions.create(model="auto", messages=[{"role": "user", "content": "1+1"}])
    assert reply.choices[0].message.content == "1 + 1 = 2"


def test_a_budget_for_an_unknown_unit_is_a_team_file_error() -> None:
    from pinfactory.errors import TeamFileError

    bad = TEAM + "budgets: [{unit: marketing, period: day, max_spend_usd: 1}]\n"
    with pytest.raises(TeamFileError, match="budget for unknown unit 'marketing'"):
        parse_team(bad, "bad.yaml", {})
