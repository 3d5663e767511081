"""``durability: journal``: answered at the journal write, committed in groups, and nothing
lost when the process is killed with records still uncommitted (a real ``SIGKILL``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from pinfactory.ledger import AuditEvent, ChainHead, LedgerEntry, SQLiteLedger, open_ledger, store
from pinfactory.ledger.chain import GENESIS, jsonable, seal, verify_ledger
from pinfactory.ledger.journal import FRAME, Journal, decode, encode, frames
from pinfactory.ledger.record import prepare
from pinfactory.ledger.writer import Connection
from pinfactory.testing.processes import SRC


def entry(request_id: str) -> LedgerEntry:
    return LedgerEntry(
        request_id, "sales", "alice", "auto", "calc", "rules", "r", 3, 5, Decimal("0.01"), 1.5, 200
    )


def events(request_id: str) -> list[AuditEvent]:
    return [
        AuditEvent("decision", request_id, {"member": "calc"}),
        AuditEvent("call", request_id, {"member": "calc", "cost_usd": Decimal("0.01")}),
        AuditEvent("response", request_id, {"status": 200, "member": "calc"}),
    ]


async def contents(location: str, journal: Path) -> tuple[list[str], bool, int]:
    """Request ids in the ledger (oldest first), whether the chain verifies, and the cost."""
    ledger = open_ledger(location, "journal", str(journal))
    await ledger.open()
    try:
        report = await verify_ledger(ledger)
        rows = await ledger.entries(limit=10_000)
        spent = sum((r.cost_usd for r in rows), Decimal(0))
    finally:
        await ledger.close()
    return [r.request_id for r in reversed(rows)], report.intact, int(spent * 100)


def test_a_record_round_trips_through_the_journal_encoding() -> None:
    record = prepare(entry("req_1"), events("req_1"))
    assert decode(encode(record)) == record
    assert [e.kind for e in record.entries] == ["decision", "call", "response"]
    rows, _ = seal(record.entries, ChainHead(0, GENESIS))
    call, response = json.loads(rows[1][3])["payload"], json.loads(rows[2][3])["payload"]
    assert call["cost_usd"] == "0.01"  # as the chain seals it
    assert response["row"] == {  # the row's figures, sealed in the closing entry
        "status": 200, "cost_nusd": 10_000_000, "input_tokens": 3, "output_tokens": 5,
        "unit": "sales", "member": "calc",
    }  # fmt: skip
    assert record.row[10] == 10_000_000 and record.row[0] == "req_1"


def test_a_record_journaled_before_records_were_prepared_still_replays() -> None:
    """A journal frame written by the format before this one (the row's fields by name,
    each event's payload as JSON data) replays as the same record a live write makes."""
    row, sealed = entry("req_1"), events("req_1")
    old = {
        "row": {
            "request_id": row.request_id, "unit": row.unit, "user": row.user,
            "model": row.model, "member": row.member, "router": row.router,
            "reason": row.reason, "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens, "cost_usd": "0.01",
            "latency_ms": row.latency_ms, "status": row.status, "error": None,
            "stream": False, "tags": [], "time": row.time, "correlation_id": None,
        },
        "events": [[e.kind, e.request_id, e.time, jsonable(e.payload)] for e in sealed],
    }  # fmt: skip
    assert decode(json.dumps(old).encode()) == prepare(row, sealed)


def test_a_torn_or_corrupt_frame_ends_the_replay(tmp_path: Path) -> None:
    journal = Journal(tmp_path, file_bytes=4096)
    assert journal.open() == []
    first = journal.append(b'{"a": 1}')
    second = journal.append(b'{"b": 2}')
    data = (tmp_path / first.journal).read_bytes()
    assert len(data) == 4096  # allocated whole; zeros after the last frame end the replay
    assert [p for _, p in frames(data)] == [b'{"a": 1}', b'{"b": 2}']
    torn = data[: second.end - 3]  # the second frame cut short
    assert [p for _, p in frames(torn)] == [b'{"a": 1}']
    flipped = data[: first.end + FRAME.size] + b"X" + data[first.end + FRAME.size + 1 :]
    assert [p for _, p in frames(flipped)] == [b'{"a": 1}']  # the CRC catches the edit
    assert journal.close(drained=True) == first.journal
    assert list(tmp_path.iterdir()) == []


def test_a_full_file_rotates_and_is_deleted_once_committed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, file_bytes=256)
    journal.open()
    positions = [journal.append(b"x" * 100) for _ in range(5)]  # two frames a file
    names = [p.journal for p in positions]
    assert names[0] == names[1] != names[2] == names[3] != names[4]
    assert len(list(tmp_path.glob("*.journal"))) == 3
    journal.committed(names[0], positions[1].end)  # all of the first file
    journal.committed(names[2], positions[2].end)  # half of the second
    assert journal.removed == [names[0]]
    assert sorted(p.name for p in tmp_path.glob("*.journal")) == sorted({names[2], names[4]})
    assert journal.close(drained=False) is None  # the rest stays for the next start
    assert len(list(tmp_path.glob("*.journal"))) == 2


async def test_journaled_records_commit_in_groups_and_are_read_back(
    location: str, tmp_path: Path
) -> None:
    folder = tmp_path / "journal"
    ledger = open_ledger(location, "journal", str(folder))
    await ledger.open()
    try:
        await asyncio.gather(
            *(ledger.record(entry(f"req_{i}"), events(f"req_{i}")) for i in range(60))
        )
        # a read in the same process waits for the journaled writes before it
        assert (await ledger.entry("req_59")) is not None
        assert len(await ledger.entries(limit=100)) == 60
        assert ledger.commits < 60  # type: ignore[attr-defined]
        assert (await verify_ledger(ledger)).intact
        assert len(list(folder.glob("*.journal"))) == 1
    finally:
        await ledger.close()
    assert list(folder.iterdir()) == []  # closed with everything committed: nothing left
    ids, intact, cents = await contents(location, folder)
    assert ids == [f"req_{i}" for i in range(60)] and intact and cents == 60


CHILD = """
import asyncio, os, signal, sqlite3, sys
from decimal import Decimal
from pinfactory.ledger import AuditEvent, LedgerEntry, SQLiteLedger, open_ledger, store

location, folder, committed, pending = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def entry(rid):
    return LedgerEntry(rid, "sales", "alice", "auto", "calc", "rules", "r", 3, 5,
                       Decimal("0.01"), 1.5, 200)

def events(rid):
    return [AuditEvent("decision", rid, {"member": "calc"}),
            AuditEvent("response", rid, {"status": 200, "member": "calc"})]

async def main():
    ledger = open_ledger(location, "journal", folder)
    await ledger.open()
    for i in range(committed):
        await ledger.record(entry(f"req_{i}"), events(f"req_{i}"))
    await ledger.entries(limit=1)  # waits until those are committed
    if location.startswith("postgres"):
        import psycopg
        blocker = psycopg.connect(location)
        blocker.execute("SELECT 1 FROM chain_head WHERE id = 1 FOR UPDATE")
    else:
        blocker = sqlite3.connect(location, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the writer cannot commit from here on
    for i in range(committed, committed + pending):
        await ledger.record(entry(f"req_{i}"), events(f"req_{i}"))
        print(f"req_{i}", flush=True)  # acknowledged
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.mark.parametrize("committed", [0, 40])
async def test_records_journaled_but_uncommitted_survive_a_kill_9_once_each(
    location: str, tmp_path: Path, committed: int
) -> None:
    folder = tmp_path / "journal"
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), location, str(folder), str(committed), "60"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        timeout=120,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    acknowledged = child.stdout.split()
    assert len(acknowledged) == 60
    assert len(list(folder.glob("*.journal"))) == 1  # the dead process's, unlocked now
    # the next process to open the ledger commits what the dead one journaled
    ids, intact, cents = await contents(location, folder)
    assert ids == [f"req_{i}" for i in range(committed + 60)]  # in order, each once
    assert intact and cents == committed + 60
    assert list(folder.iterdir()) == []
    # and opening again replays nothing twice
    assert (await contents(location, folder))[0] == ids


async def test_a_live_process_journal_is_not_claimed(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    db = str(tmp_path / "ledger.db")
    first = open_ledger(db, "journal", str(folder))
    second = open_ledger(db, "journal", str(folder))
    await first.open()
    await second.open()  # two workers on one ledger: each keeps its own journal
    try:
        await first.record(entry("req_a"), events("req_a"))
        await second.record(entry("req_b"), events("req_b"))
        assert len(list(folder.glob("*.journal"))) == 2
        assert {e.request_id for e in await second.entries()} >= {"req_b"}
    finally:
        await first.close()
        await second.close()
    ids, intact, _ = await contents(db, folder)
    assert sorted(ids) == ["req_a", "req_b"] and intact


class Impatient(SQLiteLedger):
    """Gives up on a locked database after 50 ms instead of 10 s (the test's patience)."""

    def _connect(self) -> Connection:
        db = super()._connect()
        db.cursor().execute("PRAGMA busy_timeout=50")
        return db


async def test_closing_while_the_database_stays_locked_keeps_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "CLOSE_FLUSH_S", 0.3)
    db, folder = tmp_path / "ledger.db", tmp_path / "journal"
    ledger = Impatient(str(db), "journal", str(folder))
    await ledger.open()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # nothing can commit: the writer retries, with backoff
    try:
        for i in range(5):
            await ledger.record(entry(f"req_{i}"), events(f"req_{i}"))
        await asyncio.wait_for(ledger.close(), 10)  # returns: it does not wait for ever
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert len(list(folder.glob("*.journal"))) == 1  # kept for the next start
    ids, intact, cents = await contents(str(db), folder)
    assert ids == [f"req_{i}" for i in range(5)] and intact and cents == 5


async def test_journaled_records_wait_for_company_but_a_reader_does_not_wait(
    location: str, tmp_path: Path
) -> None:
    """Posted records linger for more before their commit (one client's requests come one
    by one); a read, which waits for them, ends the wait and sees them all at once."""
    ledger = open_ledger(location, "journal", str(tmp_path / "journal"))
    await ledger.open()
    writer = ledger._writer  # type: ignore[attr-defined]
    writer.linger_s = 600.0  # longer than any test: only the reader can end the wait
    try:
        commits = writer.commits
        for i in range(5):  # one at a time, as a lone client's requests arrive
            await ledger.record(entry(f"req_{i}"), events(f"req_{i}"))
            await asyncio.sleep(0.01)
        assert writer.commits == commits and not writer.drained  # all five still lingering
        rows = await asyncio.wait_for(ledger.entries(limit=10), timeout=60)
        assert [r.request_id for r in reversed(rows)] == [f"req_{i}" for i in range(5)]
        assert writer.commits == commits + 1 and writer.drained  # one commit for all five
    finally:
        await ledger.close()  # the stop sign ends a lingering batch too
    ids, intact, cents = await contents(location, tmp_path / "journal")
    assert ids == [f"req_{i}" for i in range(5)] and intact and cents == 5


async def test_closing_commits_records_still_lingering(location: str, tmp_path: Path) -> None:
    ledger = open_ledger(location, "journal", str(tmp_path / "journal"))
    await ledger.open()
    ledger._writer.linger_s = 600.0  # type: ignore[attr-defined]
    try:
        for i in range(3):
            await ledger.record(entry(f"req_{i}"), events(f"req_{i}"))
    finally:
        await asyncio.wait_for(ledger.close(), timeout=60)
    assert list((tmp_path / "journal").iterdir()) == []  # committed, so the journal is gone
    ids, intact, cents = await contents(location, tmp_path / "journal")
    assert ids == ["req_0", "req_1", "req_2"] and intact and cents == 3
