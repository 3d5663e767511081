"""Ledger fixtures: the same tests on SQLite and on PostgreSQL.

PostgreSQL tests use ``PINFACTORY_TEST_PG_DSN`` (``scripts/postgres.sh`` starts a
server and prints one); each test gets its own schema. Without a DSN they skip,
except in CI (``CI=true``), where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pg_dsn() -> str:
    dsn = os.environ.get("PINFACTORY_TEST_PG_DSN", "")
    if not dsn:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PINFACTORY_TEST_PG_DSN is not set: run scripts/postgres.sh")
        pytest.skip("PINFACTORY_TEST_PG_DSN not set (scripts/postgres.sh prints one)")
    return dsn


@pytest.fixture
def pg_location() -> Iterator[str]:
    """A DSN whose tables land in a fresh schema, dropped afterwards."""
    dsn = pg_dsn()
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in dsn else "?"
    yield f"{dsn}{separator}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh ledger lives: a SQLite file or a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return str(request.getfixturevalue("pg_location"))
