"""Two gateway processes on one PostgreSQL ledger: one intact chain, exact quotas."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pinfactory.gateway.server import free_port
from pinfactory.ledger import open_ledger
from pinfactory.ledger.chain import verify_ledger
from pinfactory.routing.quotas import window_start

ROOT = Path(__file__).resolve().parents[2]
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
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    ports = [free_port(), free_port()]
    log = (tmp_path / "gateways.log").open("wb")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pinfactory", "serve", "--team", str(team), "--port", str(p)],
            env=env,
            stdout=log,
            stderr=log,
        )
        for p in ports
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + 60
        for url, proc in zip(urls, procs, strict=True):
            while True:
                assert proc.poll() is None, (tmp_path / "gateways.log").read_text()
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        log.close()


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
    # 25 answered x (request, decision, call, response, row) + 35 refused x (request, error,
    # row): every ledger row is sealed by its own entry
    assert report.intact, report.problem
    assert report.checked == 25 * 5 + 35 * 3
