"""Fixtures for the request-path tests: a scripted upstream, ledgers on SQLite and
PostgreSQL, and reading their ``requests`` rows."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pinfactory.gateway.server import serve_in_thread
from tests.ledger.conftest import BACKENDS, pg_location
from tests.pipeline.upstream import Counter, scripted_upstream

__all__ = ["pg_location"]  # the ledger tests' fixture, used by ``location`` here


def ledger_where(location: str) -> str:
    if location.startswith("postgres"):
        return f"dsn: '{location}'"
    return f"path: '{location}'"


def rows(location: str) -> list[dict[str, Any]]:
    """Every ``requests`` row, oldest first, as dicts (SQLite or PostgreSQL)."""
    sql = (
        'SELECT seq, request_id, status, member, "user", model, input_tokens, output_tokens, '
        "cost_nusd, error, correlation_id FROM requests ORDER BY seq"
    )
    if location.startswith("postgres"):
        with psycopg.connect(location) as conn:
            cur = conn.execute(sql)
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    db = sqlite3.connect(location)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(sql).fetchall()]
    finally:
        db.close()


def wait_for_rows(location: str, n: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Rows once there are ``n`` (a client that left is recorded in the background)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = rows(location)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Counter]]:
    counter = Counter()
    with serve_in_thread(scripted_upstream(counter)) as url:
        yield url, counter


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return str(request.getfixturevalue("pg_location"))
