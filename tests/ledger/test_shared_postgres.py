"""Two gateway processes on one PostgreSQL ledger: one intact chain, exact quotas."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pinfactory.ledger import open_ledger
from pinfactory.ledger.chain import verify_ledger
from pinfactory.routing.quotas import window_start
from pinfactory.testing.processes import served

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def team_file(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "shared.yaml"
    path.write_text(
        "members: [{name: calculator, kind: calculator, price: {per_call: 0.01}}]\n"
        "routing: {kind: rules, fallback: calculator}\n"
        "keys: [{key: sk-sales-0001, unit: sales}]\n"
        "budgets: [{unit: sales, period: day, max_spend_usd: 0.25}]\n"
        f"ledger: {{dsn: '{dsn}', durability: group}}\n"
    )
    return path


@pytest.fixture
def two_gateways(pg_location: str, tmp_path: Path) -> Iterator[list[str]]:
    team = team_file(tmp_path, pg_location)
    with served(team, log=tmp_path / "gateways.log", count=2) as gateways:
        yield [gateway.url for gateway in gateways]


async def test_two_processes_share_one_chain_and_one_exact_budget(
    two_gateways: list[str], pg_location: str
) -> None:
    urls = two_gateways

    async def ask(client: httpx.AsyncClient, url: str) -> int:
        reply = await client.post(
            url + "/v1/chat/completions",
            headers={"authorization": "Bearer sk-sales-0001"},
            json={"model": "auto", "messages": [{"role": "user", "content": "3 + 4"}]},
        )
        return reply.status_code

    async with httpx.AsyncClient(timeout=60) as client:
        statuses = await asyncio.gather(*(ask(client, urls[i % 2]) for i in range(60)))
    assert statuses.count(200) == 25 and statuses.count(429) == 35
    ledger = open_ledger(pg_location)
    await ledger.open()
    try:
        assert await ledger.usage("budget:sales:day", window_start("day")) == (25, 250_000_000)
        served = {r.key: r for r in await ledger.spend("unit")}["sales"]
        assert served.requests == 60 and str(served.cost_usd) == "0.25"
        report = await verify_ledger(ledger)
    finally:
        await ledger.close()
    # 25 answered x (request, decision, call, response) + 35 refused x (request, error):
    # every ledger row is sealed by its own closing entry
    assert report.intact, report.problem
    assert report.checked == 25 * 4 + 35 * 2
