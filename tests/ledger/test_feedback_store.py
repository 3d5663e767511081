"""The ledger's feedback table on SQLite and PostgreSQL, including ledgers made before it."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from pinfactory.feedback import LABEL_KINDS as FEEDBACK_LABELS
from pinfactory.feedback import feedback_event, labelled_outcomes
from pinfactory.ledger import Feedback, LedgerEntry, open_ledger
from pinfactory.ledger.base import AuditEvent
from pinfactory.ledger.chain import verify_ledger
from pinfactory.ledger.sqlite import SQLITE
from pinfactory.ledger.store import LABEL_KINDS, LABELS_TERM, schema


def entry(request_id: str, unit: str) -> LedgerEntry:
    return LedgerEntry(
        request_id, unit, "alice", "auto", "calc", "rules", "fallback", 3, 4,
        Decimal("0.01"), 1.0, 200,
    )  # fmt: skip


async def exercise(location: str) -> None:
    ledger = open_ledger(location)
    await ledger.open()
    try:
        await ledger.record(entry("req_a", "sales"), [AuditEvent("decision", "req_a", {})])
        assert await ledger.entry("req_missing") is None
        found = await ledger.entry("req_a")
        assert found is not None and (found.unit, found.member) == ("sales", "calc")
        given = [
            Feedback("fb_1", "req_a", "sales", "alice", 0.5, None, "ok", 10.0),
            Feedback("fb_2", "req_a", "sales", "bob", 1.0, "up", None, 11.0),
        ]
        for feedback in given:
            await ledger.add_feedback(feedback, [feedback_event(feedback)])
        assert await ledger.feedback("req_a") == given
        assert await ledger.feedback("req_other") == []
        labels = [label async for label in labelled_outcomes(ledger)]
        assert [(x.source, x.quality, x.label, x.comment) for x in labels] == [
            ("user", 0.5, "score", "ok"),
            ("user", 1.0, "up", None),
        ]
        later = [label async for label in labelled_outcomes(ledger, after=labels[0].seq)]
        assert [x.seq for x in later] == [labels[1].seq]
        assert (await verify_ledger(ledger)).intact
    finally:
        await ledger.close()


def test_feedback_round_trip(location: str) -> None:
    asyncio.run(exercise(location))


def old_schema() -> str:
    """The schema as it was before the feedback table and its indexes."""
    return schema("BIGSERIAL", "DOUBLE PRECISION", "BIGINT").split(
        "CREATE TABLE IF NOT EXISTS feedback"
    )[0]


def test_a_sqlite_ledger_from_before_gains_the_feedback_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(old_schema().replace("BIGSERIAL", "INTEGER"))
    db.close()
    asyncio.run(exercise(str(path)))


@pytest.mark.postgres
def test_a_postgres_ledger_from_before_gains_the_feedback_table(pg_location: str) -> None:
    with psycopg.connect(pg_location, autocommit=True) as conn:
        for statement in old_schema().split(";"):
            if statement.strip():
                conn.execute(statement.encode())
        assert conn.execute("SELECT to_regclass('feedback')").fetchone() == (None,)
    asyncio.run(exercise(pg_location))


def test_the_label_scan_reads_a_partial_index_that_ordinary_entries_skip(tmp_path: Path) -> None:
    """Labels are found through ``audit_label_kinds``, which holds label entries only; a
    ledger made with an older index (``audit(kind, seq)``, updated by every entry, or
    ``audit_labels``, whose IN-list condition cost a temporary b-tree per entry) loses it."""
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path)
    db.executescript(SQLITE.schema.replace("DROP INDEX IF EXISTS audit_kind;", ""))
    db.execute("CREATE INDEX audit_kind ON audit(kind, seq)")
    db.execute("CREATE INDEX audit_labels ON audit(seq) WHERE kind IN ('a', 'b', 'c')")
    db.close()
    asyncio.run(exercise(str(path)))  # opening it again runs the schema
    db = sqlite3.connect(path)
    try:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "audit_label_kinds" in indexes
        assert "audit_kind" not in indexes and "audit_labels" not in indexes
        held = db.execute("SELECT COUNT(*) FROM audit INDEXED BY audit_label_kinds WHERE "
                          + LABELS_TERM).fetchone()[0]  # fmt: skip
        everything = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        assert held == 2 < everything  # the two feedback entries, not the decision's
        scan = (
            "EXPLAIN QUERY PLAN SELECT seq FROM audit WHERE seq > 0 AND kind IN ('feedback') "
            f"AND {LABELS_TERM} ORDER BY seq LIMIT 10"
        )
        assert "audit_label_kinds" in str(db.execute(scan).fetchall())
        inserted = db.execute("EXPLAIN INSERT INTO audit VALUES (1, 'r', 'call', '', '', '')")
        assert "OpenEphemeral" not in {row[1] for row in inserted}  # no b-tree per entry
    finally:
        db.close()
    assert set(FEEDBACK_LABELS) <= set(LABEL_KINDS)  # every kind the export scans is indexed
