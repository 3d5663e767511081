"""Group commit: one transaction for many requests, the chain head read and written once."""

from __future__ import annotations

import asyncio
from typing import Any

from pinfactory.errors import LedgerError
from pinfactory.ledger import AuditEvent, open_ledger
from pinfactory.ledger.chain import verify_ledger
from pinfactory.ledger.store import SQLLedger
from tests.ledger.test_chain import entry, events


async def test_a_failed_write_inside_a_group_leaves_one_intact_chain(location: str) -> None:
    """A write that sealed entries and then failed is rolled back to its savepoint; the
    requests committed with it in the same transaction keep a gapless chain."""
    ledger = open_ledger(location, "group")
    assert isinstance(ledger, SQLLedger)
    await ledger.open()

    def seal_then_fail(cur: Any) -> None:
        ledger._seal(cur, [AuditEvent("decision", "req_doomed", {"member": "x"})])
        cur.execute("SELECT * FROM no_such_table")

    try:
        writes = [ledger.record(entry(f"req_{i}"), events(f"req_{i}")) for i in range(40)]
        writes.insert(20, ledger._write(seal_then_fail))
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        failed = [o for o in outcomes if o is not None]
        assert len(failed) == 1 and isinstance(failed[0], LedgerError)
        assert ledger.commits < 41  # the writes really shared transactions
        report = await verify_ledger(ledger)
        assert report.intact, report.problem
        assert report.checked == 120
        assert (await ledger.head()).seq == 120
        assert await ledger.audit(request_id="req_doomed") == []
    finally:
        await ledger.close()
