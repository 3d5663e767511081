"""Quota counters and unit budgets: atomic, exact, zero overspend under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import open_ledger
from pinfactory.ledger.base import Cap
from pinfactory.routing.quotas import window_start
from pinfactory.team import parse_team


async def test_try_consume_respects_both_limits(location: str) -> None:
    ledger = open_ledger(location)
    await ledger.open()
    try:
        assert await ledger.try_consume("q", 0.0, Cap(2, 100), 1, 60)
        assert not await ledger.try_consume("q", 0.0, Cap(2, 100), 1, 41)  # spend would pass 100
        assert await ledger.try_consume("q", 0.0, Cap(2, 100), 1, 40)
        assert not await ledger.try_consume("q", 0.0, Cap(2, None), 1, 0)  # calls would pass 2
        assert await ledger.try_consume("q", 0.0, Cap(None, None), 5, 5)  # no limits
        assert not await ledger.try_consume("fresh", 0.0, Cap(None, 10), 1, 11)  # first use too big
        assert await ledger.try_consume("q", 86400.0, Cap(2, 100), 1, 100)  # a new window
        assert await ledger.usage("q", 0.0) == (7, 105)
        await ledger.adjust("q", 0.0, -1, -5)
        assert await ledger.usage("q", 0.0) == (6, 100)
    finally:
        await ledger.close()


async def test_fifty_concurrent_consumers_never_overspend(location: str) -> None:
    """Five ledger connections (five writers), fifty requests, room for exactly seven."""
    ledgers = [open_ledger(location) for _ in range(5)]
    for ledger in ledgers:
        await ledger.open()
    try:
        assert await ledgers[0].try_consume("budget:sales:day", 0.0, Cap(None, 1000), 93, 930)
        results = await asyncio.gather(
            *(
                ledgers[i % 5].try_consume("budget:sales:day", 0.0, Cap(None, 1000), 1, 10)
                for i in range(50)
            )
        )
        assert sum(results) == 7
        assert await ledgers[0].usage("budget:sales:day", 0.0) == (100, 1000)
    finally:
        for ledger in ledgers:
            await ledger.close()


BUDGET_TEAM = """\
name: budgeted
members:
  - {{name: calculator, kind: calculator, tier: tool, price: {{per_call: 0.01}}}}
  - {{name: cheap, kind: calculator, tier: tool, price: {{per_call: 0.001}}}}
routing: {{kind: rules, fallback: calculator}}
keys:
  - {{key: sk-sales-0001, unit: sales, user: alice}}
  - {{key: sk-support-0002, unit: support, user: bob}}
budgets:
  - {{unit: sales, period: day, max_spend_usd: 0.10, on_exhausted: refuse}}
  - {{unit: support, period: month, max_spend_usd: 0.055, on_exhausted: downgrade}}
ledger: {{{where}}}
"""


def budget_team(location: str) -> str:
    where = f"dsn: '{location}'" if location.startswith("postgresql") else f"path: '{location}'"
    return BUDGET_TEAM.format(where=where)


@pytest.fixture
def budget_gateway(location: str) -> Iterator[tuple[str, str]]:
    team = parse_team(budget_team(location), "budgeted.yaml", {})
    with serve_in_thread(create_app(team)) as url:
        yield url, location


async def ask(client: httpx.AsyncClient, key: str, model: str = "auto") -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "6 * 7"}]},
    )


async def test_budget_refuses_past_the_limit_under_fifty_concurrent_requests(
    budget_gateway: tuple[str, str],
) -> None:
    url, location = budget_gateway
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(7):  # nearly exhausted: $0.07 of $0.10
            assert (await ask(client, "sk-sales-0001")).status_code == 200
        replies = await asyncio.gather(*(ask(client, "sk-sales-0001") for _ in range(50)))
        statuses = [r.status_code for r in replies]
        assert statuses.count(200) == 3 and statuses.count(429) == 47
        refusal = next(r for r in replies if r.status_code == 429).json()["error"]
        assert refusal["code"] == "quota_exceeded"
        assert "budget 'sales/day' exhausted" in refusal["message"]
        # another unit is still served
        assert (await ask(client, "sk-support-0002")).status_code == 200
    ledger = open_ledger(location)
    await ledger.open()
    try:
        assert await ledger.usage("budget:sales:day", window_start("day")) == (10, 100_000_000)
        sales = {r.key: r for r in await ledger.spend("unit")}["sales"]
        assert str(sales.cost_usd) == "0.1" and sales.errors == 47
    finally:
        await ledger.close()


async def test_downgrade_uses_a_cheaper_member_then_refuses(
    budget_gateway: tuple[str, str],
) -> None:
    url, location = budget_gateway
    seen: list[object] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(12):
            reply = await ask(client, "sk-support-0002")
            meta = reply.json().get("pinfactory", {})
            seen.append(meta["member"] if reply.status_code == 200 else reply.status_code)
            if meta.get("member") == "cheap":
                assert "budget 'support/month' exhausted: downgraded" in meta["reason"]
    # $0.055 a month: five calls at $0.01, then five at $0.001, then nothing fits
    assert seen == ["calculator"] * 5 + ["cheap"] * 5 + [429, 429]
    ledger = open_ledger(location)
    await ledger.open()
    try:
        usage = await ledger.usage("budget:support:month", window_start("month"))
        assert usage == (10, 55_000_000)
    finally:
        await ledger.close()
