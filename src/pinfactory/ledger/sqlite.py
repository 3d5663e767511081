"""The SQLite ledger: one file, WAL mode, ``synchronous=FULL``.

Writes run on the ledger's writer thread (see ``writer.py``) inside
``BEGIN IMMEDIATE`` transactions, so the request is acknowledged only after
its row and audit entries are committed and synced; reads use a second
connection, which WAL lets run beside the writer.
"""

from __future__ import annotations

import sqlite3

from pinfactory.errors import LedgerError
from pinfactory.ledger.store import Dialect, SQLLedger, schema
from pinfactory.ledger.writer import Connection

SQLITE = Dialect(
    name="sqlite",
    schema=schema("INTEGER", "REAL", "INTEGER").replace(
        "seq INTEGER PRIMARY KEY,\n    request_id TEXT NOT NULL,\n    time",
        "seq INTEGER PRIMARY KEY AUTOINCREMENT,\n    request_id TEXT NOT NULL,\n    time",
        1,
    ),
    begin="BEGIN IMMEDIATE",
    lock_head="SELECT seq, hash FROM chain_head WHERE id = 1",
    placeholder="?",
    errors=(sqlite3.Error,),
)
# columns added since the first release: (table, column, type), added when missing
ADDED_COLUMNS = (
    ("reviews", "held", "TEXT"),
    ("requests", "correlation_id", "TEXT"),
    ("requests", "sealed_seq", "INTEGER"),
)


class SQLiteLedger(SQLLedger):
    dialect = SQLITE

    def _connect(self) -> Connection:
        try:
            db = sqlite3.connect(self.location, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.location}: {exc}") from exc
        return db

    def _create_schema(self, conn: Connection) -> None:
        assert isinstance(conn, sqlite3.Connection)
        try:
            conn.executescript(self.dialect.schema)
            for table, column, kind in ADDED_COLUMNS:
                present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except sqlite3.Error as exc:
            raise LedgerError(
                f"cannot open ledger {self.location}: {exc} (not a pinfactory ledger, or damaged)"
            ) from exc
