"""Group commit: one transaction for many writes, and a bad write does not sink the batch."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest

from pinfactory.errors import LedgerError, NotFound
from pinfactory.ledger import AuditEvent, LedgerEntry, open_ledger
from pinfactory.ledger.base import Cap, Review
from pinfactory.ledger.chain import verify_ledger
from pinfactory.ledger.store import SQLLedger


def entry(request_id: str) -> LedgerEntry:
    cost = Decimal("0.01")
    return LedgerEntry(
        request_id, "sales", "alice", "auto", "calc", "rules", "ok", 3, 5, cost, 1.0, 200
    )


def events(request_id: str) -> list[AuditEvent]:
    return [
        AuditEvent("decision", request_id, {"member": "calc"}),
        AuditEvent("call", request_id, {"member": "calc", "cost_usd": "0.01"}),
        AuditEvent("response", request_id, {"status": 200, "member": "calc"}),
    ]


def review(review_id: str) -> Review:
    return Review(review_id, "req_r", "sales", "alice", 1.0, "check", [], "6 * 7", "calc", "41")


async def test_a_failing_write_is_replayed_alone_and_the_rest_commit(location: str) -> None:
    ledger = open_ledger(location, "group")
    assert isinstance(ledger, SQLLedger)
    await ledger.open()
    gate = threading.Event()
    try:
        # hold the writer on a first operation so everything below queues into one batch
        blocker = asyncio.ensure_future(ledger._write(lambda _: gate.wait(10)))
        await asyncio.sleep(0.05)
        writes = [ledger.record(entry(f"req_{i}"), events(f"req_{i}")) for i in range(20)]
        writes.insert(5, ledger.add_review(review("rev_dup"), [AuditEvent("review.queued", "r")]))
        writes.insert(12, ledger.add_review(review("rev_dup"), [AuditEvent("review.queued", "r")]))
        writes.insert(15, ledger.decide_review("rev_missing", "approved", "carol", None, None, []))
        tasks = [asyncio.ensure_future(w) for w in writes]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        commits_after, replays = ledger.commits, ledger.replays
        report = await verify_ledger(ledger)
        stored = await ledger.reviews()
        served = {r.key: r for r in await ledger.spend("unit")}["sales"]
    finally:
        gate.set()
        await ledger.close()
    assert replays == 1  # the batch of 23 failed once, then ran write by write
    assert commits_after == 1 + 21  # the blocker, then 20 records and one review
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 2
    assert isinstance(outcomes[12], LedgerError)  # the duplicate review id
    assert isinstance(outcomes[15], NotFound)
    assert [r.id for r in stored] == ["rev_dup"]
    assert served.requests == 20
    assert report.intact, report.problem
    assert report.checked == 20 * 3 + 1  # 3 events a request (the last seals the row), 1 review


@pytest.mark.parametrize("durability", ["full", "group"])
async def test_group_batches_share_commits_and_keep_quotas_exact(
    location: str, durability: str
) -> None:
    ledger = open_ledger(location, durability)  # type: ignore[arg-type]
    await ledger.open()
    try:
        granted = await asyncio.gather(
            *(ledger.try_consume("q", 0.0, Cap(30, None), 1, 0) for _ in range(50)),
            *(ledger.record(entry(f"req_{i}"), events(f"req_{i}")) for i in range(50)),
        )
        usage = await ledger.usage("q", 0.0)
        commits = ledger.commits  # type: ignore[attr-defined]
        report = await verify_ledger(ledger)
    finally:
        await ledger.close()
    assert granted[:50].count(True) == 30
    assert usage == (30, 0)
    assert report.intact and report.checked == 150
    assert commits < 100 if durability == "group" else commits == 100
