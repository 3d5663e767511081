"""``kill -9`` a gateway under load, restart it on the same ledger, and check what survived.

For each durability mode: every request the gateway acknowledged (a 200 the client
received) is in the ledger, the audit chain verifies, and the unit's budget was never
spent twice: across the crash and the restart no more requests were answered than the
budget pays for. With ``journal`` the acknowledged requests the killed process had not
committed yet are committed by the restarted one, from the journal it left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from pinfactory.ledger import open_ledger
from pinfactory.ledger.base import from_nano
from pinfactory.ledger.chain import verify_ledger
from pinfactory.testing.processes import served

pytestmark = pytest.mark.slow
KEY = {"authorization": "Bearer sk-crash-0001"}
PRICE = Decimal("0.01")
BUDGET = Decimal("1.50")  # pays for 150 answers, in all, whatever happens in between


def team_file(tmp_path: Path, durability: str) -> Path:
    path = tmp_path / "crash.yaml"
    path.write_text(
        f"members: [{{name: calculator, kind: calculator, price: {{per_call: {PRICE}}}}}]\n"
        "routing: {kind: rules, fallback: calculator}\n"
        "keys: [{key: sk-crash-0001, unit: sales}]\n"
        f"budgets: [{{unit: sales, period: day, max_spend_usd: {BUDGET}}}]\n"
        f"ledger: {{path: '{tmp_path / 'ledger.db'}', durability: {durability}}}\n"
        "observe: {access_log: false}\n"
    )
    return path


async def load(url: str, count: int, acknowledged: list[str], stop_after: float | None) -> None:
    """Send ``count`` requests from 8 clients; note the ids of those answered 200.
    With ``stop_after``, stop sending after that many seconds (the crash comes then)."""
    started = time.monotonic()
    queue = list(range(count))

    async def client_loop(client: httpx.AsyncClient) -> None:
        while queue:
            if stop_after is not None and time.monotonic() - started > stop_after:
                return
            i = queue.pop()
            body = {"model": "auto", "messages": [{"role": "user", "content": f"{i} + 1"}]}
            try:
                reply = await client.post(url + "/v1/chat/completions", json=body, headers=KEY)
            except httpx.TransportError:
                return  # the gateway is gone
            if reply.status_code == 200:
                acknowledged.append(reply.headers["x-request-id"])

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(8)))


@pytest.mark.parametrize("durability", ["full", "group", "journal"])
def test_kill_9_under_load_loses_no_acknowledged_request(tmp_path: Path, durability: str) -> None:
    team = team_file(tmp_path, durability)
    log = tmp_path / "gateway.log"
    acknowledged: list[str] = []
    with served(team, log=log) as [first]:
        url, proc = first.url, first.process

        async def crash() -> None:
            sending = asyncio.create_task(load(url, 10_000, acknowledged, stop_after=None))
            while len(acknowledged) < 60:  # in full flow, requests in flight
                await asyncio.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            await sending

        asyncio.run(crash())
        proc.wait(timeout=30)
    before = len(acknowledged)
    with served(team, log=log) as [again]:
        asyncio.run(load(again.url, 400, acknowledged, stop_after=None))  # until the budget ends

    db = sqlite3.connect(tmp_path / "ledger.db")
    try:
        recorded = {row[0] for row in db.execute("SELECT request_id FROM requests")}
        answered = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost_nusd), 0) FROM requests WHERE status = 200"
        ).fetchone()
    finally:
        db.close()
    missing = [rid for rid in acknowledged if rid not in recorded]
    assert missing == [], f"{len(missing)} acknowledged requests are not in the ledger"
    assert before >= 60
    # an answer may be recorded and then lost with the process before it reached its client,
    # never the other way round; and never more answers than the budget pays for
    assert len(acknowledged) <= answered[0] <= BUDGET / PRICE
    assert from_nano(answered[1]) <= BUDGET

    async def chain() -> bool:
        ledger = open_ledger(str(tmp_path / "ledger.db"), durability)
        await ledger.open()
        try:
            return (await verify_ledger(ledger)).intact
        finally:
            await ledger.close()

    assert asyncio.run(chain())
    if durability == "journal":  # the dead process's journal was committed, then deleted
        assert list((tmp_path / "ledger.db-pending").glob("*.journal")) == []
