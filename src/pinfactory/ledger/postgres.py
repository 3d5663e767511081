"""The PostgreSQL ledger: the same tables and chain as SQLite, shared by many gateways.

A write is acknowledged after its transaction commits (PostgreSQL's default
``synchronous_commit=on`` syncs the WAL first). A write transaction costs two
round trips however many operations it holds: ``BEGIN`` with the chain head
lock, then the buffered inserts, the head update and ``COMMIT`` in one
pipeline. Appends to the audit chain
lock the ``chain_head`` row (``SELECT ... FOR UPDATE``), so gateway worker
processes on one database append one after another and the chain stays
unbroken; quota counters are single conditional upserts, exact under any
number of concurrent writers.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pinfactory.errors import LedgerError
from pinfactory.ledger.store import Dialect, SQLLedger, schema
from pinfactory.ledger.writer import Connection

POSTGRES = Dialect(
    name="postgresql",
    schema=schema("BIGSERIAL", "DOUBLE PRECISION", "BIGINT"),
    begin="BEGIN",
    lock_head="SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE",
    placeholder="%s",
    errors=(psycopg.Error,),
    pipelined=True,
    migrations=(
        "ALTER TABLE reviews ADD COLUMN IF NOT EXISTS held TEXT",
        "ALTER TABLE requests ADD COLUMN IF NOT EXISTS correlation_id TEXT",
        "ALTER TABLE requests ADD COLUMN IF NOT EXISTS sealed_seq BIGINT",
    ),
)
SCHEMA_LOCK = 0x70696E66  # advisory lock id: creating tables from two processes at once


def is_dsn(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://")) or "dbname=" in location


def describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparseable DSN)"
    return f"postgresql://{parts.get('host', '')}:{parts.get('port', '')}/{parts.get('dbname', '')}"


class PostgresLedger(SQLLedger):
    dialect = POSTGRES

    def _connect(self) -> Connection:
        try:
            return psycopg.connect(self.location, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            where = describe(self.location)
            raise LedgerError(f"cannot open ledger {where}: {exc}".strip()) from exc

    def _create_schema(self, conn: Connection) -> None:
        assert isinstance(conn, psycopg.Connection)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in self.dialect.schema.split(";"):
                    if statement.strip():
                        conn.execute(statement.encode())
                for migration in self.dialect.migrations:
                    conn.execute(migration.encode())
        except psycopg.Error as exc:
            raise LedgerError(f"cannot create the ledger tables: {exc}") from exc
