"""Chain verification from the console: progress, the last verified entry, the failing one."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

from pinfactory.console.audit import ChainChecks
from pinfactory.ledger import AuditEvent, LedgerEntry, open_ledger


async def test_a_walk_reports_progress_and_names_the_failing_entry(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = open_ledger(str(path))
    await ledger.open()
    try:
        for i in range(30):
            rid = f"req_{i:03d}"
            await ledger.record(
                LedgerEntry(
                    rid, "sales", "", "auto", "calc", "rules", "r", 1, 1, Decimal("0.01"), 1.0, 200
                ),
                [AuditEvent("decision", rid, {"member": "calc"})],
            )
        checks = ChainChecks(ledger, page=7)
        job = checks.start()
        assert checks.start() is job  # one walk at a time
        while not job.done:
            await asyncio.sleep(0.01)
        assert job.report is not None and job.report.intact
        assert job.total == job.checked == 60 and job.percent == 100
        assert job.last is not None and job.last.seq == 60

        db = sqlite3.connect(path)
        db.execute("UPDATE audit SET body = replace(body, 'calc', 'evil') WHERE seq = 41")
        db.commit()
        db.close()
        job = checks.start()
        while not job.done:
            await asyncio.sleep(0.01)
        assert job.report is not None and not job.report.intact
        assert job.report.broken_seq == 41 and "edited" in (job.report.problem or "")
        assert job.failing is not None
        assert (job.failing.kind, job.failing.request_id) == ("decision", "req_020")
        assert job.last is not None and job.last.seq == 40  # the last entry verified
    finally:
        await ledger.close()
