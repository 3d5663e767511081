"""The SQLite ledger: one file, WAL mode, ``synchronous=FULL``.

All statements run on one dedicated worker thread, which owns the
connection; the event loop awaits each write, so a request is acknowledged
only after its row is committed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pinfactory.errors import LedgerError, RequestError
from pinfactory.ledger.base import LedgerEntry, SpendRow, from_nano, to_nano

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    time REAL NOT NULL,
    unit TEXT NOT NULL,
    user TEXT NOT NULL,
    model TEXT NOT NULL,
    member TEXT,
    router TEXT,
    reason TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_nusd INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    status INTEGER NOT NULL,
    error TEXT,
    stream INTEGER NOT NULL,
    tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_time ON requests(time);
"""

GROUPS = {"unit": "unit", "user": "user", "member": "COALESCE(member, '-')"}
COLUMNS = (
    "request_id, time, unit, user, model, member, router, reason, input_tokens, "
    "output_tokens, cost_nusd, latency_ms, status, error, stream, tags"
)


class SQLiteLedger:
    def __init__(self, path: str) -> None:
        self.location = path
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger")
            await self._run(self._connect)

    def _connect(self) -> None:
        try:
            db = sqlite3.connect(self.location, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.location}: {exc}") from exc
        self._db = db

    async def close(self) -> None:
        if self._executor is not None:
            if self._db is not None:
                await self._run(self._db.close)
                self._db = None
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise LedgerError("ledger is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise LedgerError("ledger is not open")
        return self._db

    async def record(self, entry: LedgerEntry) -> None:
        row = (
            entry.request_id,
            entry.time,
            entry.unit,
            entry.user,
            entry.model,
            entry.member,
            entry.router,
            entry.reason,
            entry.input_tokens,
            entry.output_tokens,
            to_nano(entry.cost_usd),
            entry.latency_ms,
            entry.status,
            entry.error,
            int(entry.stream),
            json.dumps(list(entry.tags)),
        )

        def write() -> None:
            try:
                self.db.execute(
                    f"INSERT INTO requests ({COLUMNS}) VALUES ({','.join('?' * 16)})", row
                )
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot record request {entry.request_id}: {exc}") from exc

        await self._run(write)

    async def spend(self, by: str, since: float | None = None) -> list[SpendRow]:
        if by == "tag":
            key = "COALESCE(json_each.value, '-')"
            source = "requests LEFT JOIN json_each(requests.tags)"
        elif by in GROUPS:
            key, source = GROUPS[by], "requests"
        else:
            raise RequestError(
                f"'by' must be one of unit, user, member, tag; got '{by}'", param="by"
            )
        sql = (
            f"SELECT {key} AS k, COUNT(*), SUM(status >= 400), SUM(input_tokens), "
            f"SUM(output_tokens), SUM(cost_nusd) FROM {source} WHERE time >= ? "
            "GROUP BY k ORDER BY SUM(cost_nusd) DESC, k"
        )
        rows = await self._run(lambda: self.db.execute(sql, (since or 0.0,)).fetchall())
        return [
            SpendRow(str(k), n, e or 0, i or 0, o or 0, from_nano(c or 0))
            for k, n, e, i, o, c in rows
        ]

    async def entries(self, limit: int = 100) -> list[LedgerEntry]:
        sql = f"SELECT {COLUMNS} FROM requests ORDER BY seq DESC LIMIT ?"
        rows = await self._run(lambda: self.db.execute(sql, (limit,)).fetchall())
        return [_entry(row) for row in rows]


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    values = dict(zip(COLUMNS.split(", "), row, strict=True))
    return LedgerEntry(
        **{k: v for k, v in values.items() if k not in ("cost_nusd", "stream", "tags")},
        cost_usd=from_nano(int(values["cost_nusd"])),
        stream=bool(values["stream"]),
        tags=tuple(json.loads(values["tags"])),
    )
