"""The audit chain: intact chains verify; edits, deletions, insertions and reorders do not."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.ledger import AuditEvent, LedgerEntry, open_ledger
from pinfactory.ledger.chain import GENESIS, link, verify_ledger

runner = CliRunner()


def entry(request_id: str, unit: str = "sales") -> LedgerEntry:
    return LedgerEntry(
        request_id,
        unit,
        "alice",
        "auto",
        "calculator",
        "rules",
        "rule matched",
        3,
        5,
        Decimal("0.01"),
        1.5,
        200,
        tags=("q2",),
    )


def events(request_id: str) -> list[AuditEvent]:
    return [
        AuditEvent("decision", request_id, {"member": "calculator", "scores": {"calculator": 1.0}}),
        AuditEvent("call", request_id, {"member": "calculator", "cost_usd": Decimal("0.01")}),
        AuditEvent("response", request_id, {"status": 200, "member": "calculator"}),
    ]


async def fill(location: str, requests: int, durability: str = "full") -> int:
    ledger = open_ledger(location, durability)  # type: ignore[arg-type]
    await ledger.open()
    try:
        await asyncio.gather(
            *(ledger.record(entry(f"req_{i}"), events(f"req_{i}")) for i in range(requests))
        )
        return ledger.commits  # type: ignore[attr-defined, no-any-return]
    finally:
        await ledger.close()


async def report(location: str) -> tuple[bool, int, int | None, str | None]:
    ledger = open_ledger(location)
    await ledger.open()
    try:
        r = await verify_ledger(ledger)
        return r.intact, r.checked, r.broken_seq, r.problem
    finally:
        await ledger.close()


def team_file(tmp_path: Path, location: str) -> Path:
    key = "dsn" if location.startswith("postgresql") else "path"
    path = tmp_path / "team.yaml"
    path.write_text(
        "members: [{name: calculator, kind: calculator}]\n"
        "routing: {kind: rules, fallback: calculator}\n"
        f"ledger: {{{key}: '{location}'}}\n"
    )
    return path


@pytest.mark.parametrize("durability", ["full", "group"])
async def test_concurrent_appends_make_one_intact_chain(location: str, durability: str) -> None:
    commits = await fill(location, 120, durability)
    intact, checked, _, problem = await report(location)
    assert intact, problem
    assert checked == 360  # decision, call, response (sealing the row's figures), 120 times
    if durability == "group":
        assert commits < 120  # several requests shared a commit
    else:
        assert commits == 120


def test_audit_verify_cli_counts_entries(location: str, tmp_path: Path) -> None:
    asyncio.run(fill(location, 4))
    result = runner.invoke(app, ["audit", "verify", "--team", str(team_file(tmp_path, location))])
    assert result.exit_code == 0, result.output
    assert "12 entries checked" in result.output


def tamper(db_path: Path, *statements: str) -> None:
    db = sqlite3.connect(db_path)
    with db:
        for statement in statements:
            db.execute(statement)
    db.close()


def verify_cli(tmp_path: Path, db: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--team", str(team_file(tmp_path, str(db)))])
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    db = tmp_path / "ledger.db"
    asyncio.run(fill(str(db), 5))  # 15 entries: 3 a request (the last seals its row)
    assert verify_cli(tmp_path, db)[0] == 0
    return db


def test_an_edited_entry_is_detected(filled: Path, tmp_path: Path) -> None:
    tamper(filled, "UPDATE audit SET body = replace(body, '0.01', '0.00') WHERE seq = 5")
    code, output = verify_cli(tmp_path, filled)
    assert code == 1
    assert "broken at entry 5" in output and "edited" in output


def test_a_deleted_entry_is_detected(filled: Path, tmp_path: Path) -> None:
    tamper(filled, "DELETE FROM audit WHERE seq = 6")
    code, output = verify_cli(tmp_path, filled)
    assert code == 1
    assert "broken at entry 7" in output and "deleted" in output


def test_an_inserted_entry_is_detected(filled: Path, tmp_path: Path) -> None:
    # Make room after entry 9 and forge an entry that links correctly to entry 9.
    db = sqlite3.connect(filled)
    prev = db.execute("SELECT hash FROM audit WHERE seq = 9").fetchone()[0]
    db.close()
    body = '{"kind":"call","payload":{"cost_usd":"0"},"request_id":"req_x","seq":10,"time":1.0}'
    tamper(
        filled,
        "UPDATE audit SET seq = -seq WHERE seq >= 10",
        "UPDATE audit SET seq = -seq + 1 WHERE seq < 0",
        f"INSERT INTO audit VALUES (10, 'req_x', 'call', '{body}', '{prev}', '{link(prev, body)}')",
    )
    code, output = verify_cli(tmp_path, filled)
    assert code == 1
    assert "broken at entry 11" in output  # the forged entry is fine; its successor is not


def test_a_reordered_entry_is_detected(filled: Path, tmp_path: Path) -> None:
    tamper(
        filled,
        "UPDATE audit SET seq = 100 WHERE seq = 4",
        "UPDATE audit SET seq = 4 WHERE seq = 5",
        "UPDATE audit SET seq = 5 WHERE seq = 100",
    )
    code, output = verify_cli(tmp_path, filled)
    assert code == 1
    assert "broken at entry" in output


def test_entries_cut_from_the_end_are_detected(filled: Path, tmp_path: Path) -> None:
    tamper(filled, "DELETE FROM audit WHERE seq >= 14")
    code, output = verify_cli(tmp_path, filled)
    assert code == 1
    assert "chain head is entry 15 but the chain ends at entry 13" in output


def test_a_damaged_database_file_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    db.write_bytes(b"this is not a database" * 100)
    code, output = verify_cli(tmp_path, db)
    assert code == 1
    assert "cannot open ledger" in output and "Traceback" not in output


@pytest.mark.postgres
def test_an_edited_entry_is_detected_on_postgres(pg_location: str, tmp_path: Path) -> None:
    import psycopg

    asyncio.run(fill(pg_location, 3))
    with psycopg.connect(pg_location, autocommit=True) as conn:
        conn.execute("UPDATE audit SET body = replace(body, '0.01', '9.99') WHERE seq = 5")
    result = runner.invoke(
        app, ["audit", "verify", "--team", str(team_file(tmp_path, pg_location))]
    )
    assert result.exit_code == 1
    assert "broken at entry 5" in " ".join(result.output.split())


def test_genesis_links_the_first_entry(filled: Path) -> None:
    db = sqlite3.connect(filled)
    first = db.execute("SELECT prev_hash, body, hash FROM audit WHERE seq = 1").fetchone()
    db.close()
    assert first[0] == GENESIS and link(GENESIS, first[1]) == first[2]
