"""The ledger over SQL: requests, the audit chain, quota counters and reviews.

One implementation for SQLite and PostgreSQL; :class:`Dialect` holds what
differs (schema types, placeholders, how to lock the chain head). Writes go
through the :class:`~pinfactory.ledger.writer.BatchWriter`; reads run on a
second connection on their own thread, so reports never wait behind commits.

Every write transaction (:class:`SQLBatch`) starts by locking the
``chain_head`` row: SQLite's ``BEGIN IMMEDIATE`` holds the database write
lock, PostgreSQL takes ``SELECT ... FOR UPDATE``. So several processes sharing
one ledger still build one unbroken chain, and since every transaction takes
that lock first, they cannot deadlock on the other rows they touch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pinfactory.errors import Conflict, LedgerError, NotFound, RequestError
from pinfactory.ledger.base import (
    AuditEvent,
    AuditRecord,
    Cap,
    ChainHead,
    Feedback,
    LedgerEntry,
    Review,
    ReviewStatus,
    SealedRow,
    SpendRow,
    StoredResponse,
    StoredRun,
    from_nano,
)
from pinfactory.ledger.chain import GENESIS, Unsealed, seal, unsealed_events
from pinfactory.ledger.journal import Journal, Orphan, decode, encode, journal_folder
from pinfactory.ledger.record import REQUEST_COLUMNS, REQUEST_INSERT, Prepared, prepare
from pinfactory.ledger.writer import BatchWriter, Connection, Durability

T = TypeVar("T")
log = logging.getLogger("pinfactory.ledger")
REPLAY_CHUNK = 500  # journal records committed per transaction when a ledger opens
CLOSE_FLUSH_S = 10.0  # how long closing waits for journaled writes to commit

REVIEW_COLUMNS = (
    'id, request_id, unit, "user", created, reason, evidence, prompt, member, answer, '
    "verdict, status, reviewer, final_answer, note, decided, held"
)
AUDIT_INSERT = (
    "INSERT INTO audit (seq, request_id, kind, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)"
)
MARK_UPSERT = (
    "INSERT INTO journal_marks (journal, committed) VALUES (?, ?) "
    "ON CONFLICT (journal) DO UPDATE SET committed = excluded.committed"
)
FEEDBACK_COLUMNS = 'id, request_id, unit, "user", time, score, thumbs, comment'
GROUPS = {"unit": "unit", "user": '"user"', "member": "COALESCE(member, '-')"}


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the SQL databases the ledger runs on."""

    name: str
    schema: str
    begin: str
    lock_head: str
    placeholder: str
    errors: tuple[type[BaseException], ...]
    pipelined: bool = False  # send a batch's statements without waiting for each reply
    migrations: tuple[str, ...] = ()  # run after the schema; each must be safe to repeat
    audit_insert: str = field(init=False)  # the per-request inserts in these placeholders
    request_insert: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "audit_insert", self.sql(AUDIT_INSERT))
        object.__setattr__(self, "request_insert", self.sql(REQUEST_INSERT))

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


class SQLBatch:
    """One write transaction of the ledger's writer, shared by a batch of operations.

    Opening it begins the transaction and reads (and locks) the chain head.
    Operations run statements at once with :meth:`execute`, or buffer inserts
    with :meth:`insert` and chain entries with :meth:`seal`; :meth:`commit`
    writes the buffered rows with one ``executemany`` per table, moves the
    chain head and commits, all in one pipeline on PostgreSQL. Buffered rows
    are not visible to :meth:`execute` before the commit.
    """

    def __init__(self, dialect: Dialect, conn: Connection) -> None:
        self._dialect = dialect
        self._conn = conn
        self._cur = conn.cursor()
        self._inserts: dict[str, list[tuple[Any, ...]]] = {}
        self.marks: dict[str, int] = {}  # journal file -> offset its committed records reach
        with self._pipeline():
            self._cur.execute(dialect.begin)
            self._cur.execute(dialect.lock_head)
            row = self._cur.fetchone()
        if row is None:
            raise LedgerError("the chain head row is missing (tampered ledger)")
        self.head = self._opened = ChainHead(int(row[0]), str(row[1]))

    @classmethod
    def begin(cls, dialect: Dialect, conn: Connection) -> SQLBatch:
        try:
            return cls(dialect, conn)
        except BaseException:
            with contextlib.suppress(*dialect.errors):
                conn.cursor().execute("ROLLBACK")
            raise

    def _pipeline(self) -> AbstractContextManager[Any]:
        pipeline = getattr(self._conn, "pipeline", None)
        return pipeline() if self._dialect.pipelined and pipeline else contextlib.nullcontext()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement now (``?`` placeholders); returns the cursor."""
        return self._cur.execute(self._dialect.sql(sql), tuple(params))

    def insert(self, sql: str, row: Sequence[Any]) -> None:
        """Buffer one insert (``?`` placeholders) until :meth:`commit`."""
        self.insert_prepared(self._dialect.sql(sql), tuple(row))

    def insert_prepared(self, sql: str, row: tuple[Any, ...]) -> None:
        """Buffer one insert of a statement in the dialect's placeholders already."""
        rows = self._inserts.get(sql)
        if rows is None:
            self._inserts[sql] = [row]
        else:
            rows.append(row)

    def seal(self, entries: Sequence[Unsealed]) -> None:
        """Append ``entries`` to the chain after everything sealed so far."""
        if not entries:
            return
        rows, self.head = seal(entries, self.head)
        audit = self._dialect.audit_insert
        found = self._inserts.get(audit)
        if found is None:
            self._inserts[audit] = rows
        else:
            found.extend(rows)

    def record(self, prepared: Prepared) -> None:
        """Buffer one request's write: its chain entries, then its row, which points at
        the entry sealing its figures (the last)."""
        self.seal(prepared.entries)
        self.insert_prepared(self._dialect.request_insert, (*prepared.row, self.head.seq))

    def mark(self, journal: str, end: int) -> None:
        """Record, in this transaction, that ``journal``'s records up to ``end`` commit."""
        self.marks[journal] = max(end, self.marks.get(journal, 0))

    def commit(self) -> None:
        with self._pipeline():
            for sql, rows in self._inserts.items():
                if self._dialect.pipelined and len(rows) > 1:
                    self._insert_rows(sql, rows)
                else:
                    self._cur.executemany(sql, rows)
            for journal, end in self.marks.items():
                self.execute(MARK_UPSERT, (journal, end))
            if self.head != self._opened:
                self.execute(
                    "UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1",
                    (self.head.seq, self.head.hash),
                )
            self._cur.execute("COMMIT")

    def rollback(self) -> None:
        self._cur.execute("ROLLBACK")

    def _insert_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One multi-row ``INSERT ... VALUES (...), (...)`` per chunk of rows."""
        head, _, marks = sql.rpartition(" VALUES ")
        per_chunk = max(1, 8192 // len(rows[0]))
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            values = ", ".join([marks] * len(chunk))
            self._cur.execute(f"{head} VALUES {values}", [v for row in chunk for v in row])


LABEL_KINDS = ("feedback", "verdict", "review.approved", "review.overridden")
"""The chain entries that label an answer (``pinfactory.feedback`` scans them): the only
ones the ``audit_label_kinds`` partial index holds, so the other entries (four or more per
request) add nothing to it. It replaced an index on ``audit(kind, seq)`` that every
entry updated, for about 10% of the request path's CPU (``bench/pipeline_cpu.py``)."""

LABELS_TERM = "({})".format(" OR ".join(f"kind = '{kind}'" for kind in LABEL_KINDS))
"""The partial index's condition; a scan that repeats it word for word can use the index.

Equalities joined by OR, not ``kind IN (...)``: SQLite evaluates the condition on every
insert into ``audit``, and an IN list of more than two constants is evaluated through a
temporary b-tree built each time (opened, filled, closed: about 33,000 instructions per
entry, four entries a request, measured with callgrind), where four comparisons cost next
to nothing. ``audit_labels``, the index made with the IN list, is dropped when a ledger
opens."""


def schema(serial: str, real: str, big: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS requests (
    seq {serial} PRIMARY KEY,
    request_id TEXT NOT NULL,
    time {real} NOT NULL,
    unit TEXT NOT NULL,
    "user" TEXT NOT NULL,
    model TEXT NOT NULL,
    member TEXT,
    router TEXT,
    reason TEXT,
    input_tokens {big} NOT NULL,
    output_tokens {big} NOT NULL,
    cost_nusd {big} NOT NULL,
    latency_ms {real} NOT NULL,
    status INTEGER NOT NULL,
    error TEXT,
    stream INTEGER NOT NULL,
    tags TEXT NOT NULL,
    correlation_id TEXT,
    sealed_seq {big}
);
CREATE INDEX IF NOT EXISTS requests_time ON requests(time);
CREATE TABLE IF NOT EXISTS audit (
    seq {big} PRIMARY KEY,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_request ON audit(request_id);
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq {big} NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS}') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS quota_usage (
    key TEXT NOT NULL,
    window_start {real} NOT NULL,
    calls {big} NOT NULL,
    nusd {big} NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE TABLE IF NOT EXISTS reviews (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    "user" TEXT NOT NULL,
    created {real} NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    prompt TEXT NOT NULL,
    member TEXT NOT NULL,
    answer TEXT NOT NULL,
    verdict TEXT NOT NULL,
    status TEXT NOT NULL,
    reviewer TEXT,
    final_answer TEXT,
    note TEXT,
    decided {real},
    held TEXT
);
CREATE INDEX IF NOT EXISTS reviews_status ON reviews(status, created);
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    "user" TEXT NOT NULL,
    time {real} NOT NULL,
    score {real} NOT NULL,
    thumbs TEXT,
    comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback(request_id);
CREATE INDEX IF NOT EXISTS requests_request ON requests(request_id);
DROP INDEX IF EXISTS audit_kind;
DROP INDEX IF EXISTS audit_labels;
CREATE INDEX IF NOT EXISTS audit_label_kinds ON audit(seq) WHERE {LABELS_TERM};
CREATE TABLE IF NOT EXISTS agent_runs (
    id TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    status TEXT NOT NULL,
    updated {real} NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_runs_status ON agent_runs(status);
CREATE TABLE IF NOT EXISTS journal_marks (
    journal TEXT PRIMARY KEY,
    committed {big} NOT NULL
);
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    unit TEXT NOT NULL,
    created {real} NOT NULL,
    body TEXT NOT NULL
);
"""


class SQLLedger:
    """A ledger on a SQL database; subclasses supply :meth:`_connect` and the dialect."""

    dialect: Dialect

    def __init__(
        self, location: str, durability: Durability = "full", journal: str | None = None
    ) -> None:
        self.location = location
        self.durability: Durability = durability
        self.journal_folder: Path | None = (
            journal_folder(location, journal) if durability == "journal" else None
        )
        self._journal: Journal | None = None
        self._writer: BatchWriter | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_db: Connection | None = None

    def _connect(self) -> Connection:
        raise NotImplementedError

    def _create_schema(self, conn: Connection) -> None:
        raise NotImplementedError

    @property
    def commits(self) -> int:
        """Commits so far (group mode: fewer than writes)."""
        return self._writer.commits if self._writer else 0

    @property
    def replays(self) -> int:
        """Group batches that failed and ran again one operation at a time."""
        return self._writer.replays if self._writer else 0

    async def open(self) -> None:
        if self._writer is not None:
            return

        def connect_writer() -> Connection:
            conn = self._connect()
            self._create_schema(conn)
            return conn

        dialect = self.dialect
        orphans: list[Orphan] = []
        if self.journal_folder is not None:
            self._journal = Journal(self.journal_folder)
            orphans = await asyncio.to_thread(self._journal.open)
        writer = BatchWriter(
            connect_writer,
            lambda conn: SQLBatch.begin(dialect, conn),
            dialect.errors,
            self.durability,
            after_commit=self._committed if self._journal is not None else None,
        )
        await asyncio.to_thread(writer.start)
        self._writer = writer
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ledger-reader")
        self._read_db = await self._read(lambda _: self._connect())
        for orphan in orphans:
            await self._replay(orphan)

    def _committed(self, tx: SQLBatch) -> None:
        """After each commit (writer's thread): the journal files it reached."""
        assert self._journal is not None
        for journal, end in tx.marks.items():
            self._journal.committed(journal, end)

    async def _replay(self, orphan: Orphan) -> None:
        """Commit the records a dead process journaled but did not commit, in order, then
        delete its file (the mark after the file: a crash in between replays nothing twice)."""
        marks = await self._read(
            self._rows("SELECT committed FROM journal_marks WHERE journal = ?", (orphan.name,))
        )
        pending = await asyncio.to_thread(orphan.read, int(marks[0][0]) if marks else 0)
        for start in range(0, len(pending), REPLAY_CHUNK):
            chunk = pending[start : start + REPLAY_CHUNK]

            def write(tx: SQLBatch, chunk: list[tuple[int, bytes]] = chunk) -> None:
                for end, payload in chunk:
                    tx.record(decode(payload))
                    tx.mark(orphan.name, end)

            await self._write(write)
        await asyncio.to_thread(orphan.remove)
        await self._forget([orphan.name])
        if pending:
            log.warning(
                "ledger: committed %d journaled request(s) left by a stopped process (%s)",
                len(pending),
                orphan.name,
            )

    async def _forget(self, journals: Sequence[str]) -> None:
        """Delete the marks of journal files that are gone."""
        if journals:
            delete = f"DELETE FROM journal_marks WHERE journal IN ({_marks(len(journals))})"
            await self._write(lambda tx: tx.execute(delete, tuple(journals)))

    async def close(self) -> None:
        journal, writer = self._journal, self._writer
        if journal is not None and writer is not None:
            # a writer that failed, or still retrying (the database gone): the journal stays
            with contextlib.suppress(LedgerError, TimeoutError):
                await asyncio.wait_for(writer.flush(), CLOSE_FLUSH_S)
            drained = writer.drained
            gone = journal.close(drained=drained)
            if drained:  # else the writer is stuck: nothing more is queued behind it
                with contextlib.suppress(LedgerError):
                    await self._forget([*journal.removed, *([gone] if gone else [])])
            self._journal = None
        if self._reader is not None:
            db, self._read_db = self._read_db, None
            if db is not None:
                await asyncio.get_running_loop().run_in_executor(self._reader, db.close)
            self._reader.shutdown(wait=True)
            self._reader = None
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None

    async def _write(self, op: Callable[[Any], T]) -> T:
        if self._writer is None:
            raise LedgerError("ledger is not open")
        return await self._writer.submit(op)

    async def _read(self, fn: Callable[[Any], T]) -> T:
        if self._reader is None:
            raise LedgerError("ledger is not open")
        if self._journal is not None and self._writer is not None:
            await self._writer.flush()  # this process reads its own journaled writes

        def run() -> T:
            try:
                return fn(self._read_db.cursor() if self._read_db is not None else None)
            except self.dialect.errors as exc:
                raise LedgerError(f"cannot read ledger {self.location}: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._reader, run)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> Callable[[Any], list[Any]]:
        text = self.dialect.sql(sql)
        return lambda cur: list(cur.execute(text, tuple(params)).fetchall())

    # -- requests and the chain ---------------------------------------------------------------

    async def record(self, entry: LedgerEntry, events: Sequence[AuditEvent] = ()) -> None:
        prepared = prepare(entry, events)  # serialized here, once: the writer links and inserts
        if self._journal is None:
            await self._write(lambda tx: tx.record(prepared))
            return
        if self._writer is None:
            raise LedgerError("ledger is not open")
        position = self._journal.append(encode(prepared))  # acknowledged from here on
        journal, end = position.journal, position.end

        def posted(tx: SQLBatch) -> None:
            tx.record(prepared)
            tx.mark(journal, end)

        self._writer.post(posted)

    async def sealed_rows(self, after: int = 0, limit: int = 1000) -> list[SealedRow]:
        sql = (
            "SELECT r.seq, r.request_id, r.status, r.cost_nusd, r.input_tokens, r.output_tokens, "
            "r.unit, r.member, r.sealed_seq, a.request_id, a.body FROM requests r "
            "LEFT JOIN audit a ON a.seq = r.sealed_seq WHERE r.seq > ? ORDER BY r.seq LIMIT ?"
        )
        rows = await self._read(self._rows(sql, (after, limit)))
        return [
            SealedRow(
                seq=int(seq),
                request_id=str(rid),
                row={
                    "status": int(status),
                    "cost_nusd": int(nusd),
                    "input_tokens": int(tin),
                    "output_tokens": int(tout),
                    "unit": str(unit),
                    "member": member,
                },
                sealed_seq=int(sealed) if sealed is not None else None,
                sealed_request_id=str(srid) if srid is not None else None,
                sealed_body=str(body) if body is not None else None,
            )
            for seq, rid, status, nusd, tin, tout, unit, member, sealed, srid, body in rows
        ]

    async def append(self, events: Sequence[AuditEvent]) -> None:
        if events:
            entries = unsealed_events(events)
            await self._write(lambda tx: tx.seal(entries))

    async def audit(
        self, request_id: str | None = None, after: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        columns = "seq, request_id, kind, body, prev_hash, hash"
        if request_id is None:
            fetch = self._rows(
                f"SELECT {columns} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            )
        else:
            fetch = self._rows(
                f"SELECT {columns} FROM audit WHERE request_id = ? ORDER BY seq", (request_id,)
            )
        rows = await self._read(fetch)
        return [
            AuditRecord(int(s), str(r), str(k), str(b), str(p), str(h)) for s, r, k, b, p, h in rows
        ]

    async def audit_kinds(
        self, kinds: Sequence[str], after: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        if not kinds:
            return []
        labels = f" AND {LABELS_TERM}" if set(kinds) <= set(LABEL_KINDS) else ""
        sql = (
            "SELECT seq, request_id, kind, body, prev_hash, hash FROM audit "
            f"WHERE seq > ? AND kind IN ({_marks(len(kinds))}){labels} ORDER BY seq LIMIT ?"
        )
        rows = await self._read(self._rows(sql, (after, *kinds, limit)))
        return [
            AuditRecord(int(s), str(r), str(k), str(b), str(p), str(h)) for s, r, k, b, p, h in rows
        ]

    async def head(self) -> ChainHead:
        rows = await self._read(self._rows("SELECT seq, hash FROM chain_head WHERE id = 1"))
        if not rows:
            raise LedgerError(f"ledger {self.location}: the chain head row is missing (tampered)")
        return ChainHead(int(rows[0][0]), str(rows[0][1]))

    # -- reports ------------------------------------------------------------------------------

    async def spend(
        self, by: str, since: float | None = None, unit: str | None = None
    ) -> list[SpendRow]:
        if by != "tag" and by not in GROUPS:
            raise RequestError(
                f"'by' must be one of unit, user, member, tag; got '{by}'", param="by"
            )
        key = "tags" if by == "tag" else GROUPS[by]
        where, params = "time >= ?", list[Any]([since or 0.0])
        if unit is not None:
            where, params = where + " AND unit = ?", [*params, unit]
        sql = (
            f"SELECT {key} AS k, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
            f"SUM(input_tokens), SUM(output_tokens), SUM(cost_nusd) FROM requests "
            f"WHERE {where} GROUP BY {key}"
        )
        totals: dict[str, list[int]] = {}
        for k, n, e, i, o, c in await self._read(self._rows(sql, params)):
            keys = (json.loads(k) or ["-"]) if by == "tag" else [str(k)]
            for name in keys:
                row = totals.setdefault(str(name), [0, 0, 0, 0, 0])
                for index, value in enumerate((n, e, i, o, c)):
                    row[index] += int(value or 0)
        rows = [SpendRow(k, n, e, i, o, from_nano(c)) for k, (n, e, i, o, c) in totals.items()]
        return sorted(rows, key=lambda r: (-r.cost_usd, r.key))

    async def entries(self, limit: int = 100) -> list[LedgerEntry]:
        sql = f"SELECT {REQUEST_COLUMNS} FROM requests ORDER BY seq DESC LIMIT ?"
        return [_entry(row) for row in await self._read(self._rows(sql, (limit,)))]

    async def entry(self, request_id: str) -> LedgerEntry | None:
        sql = (
            f"SELECT {REQUEST_COLUMNS} FROM requests WHERE request_id = ? ORDER BY seq DESC LIMIT 1"
        )
        rows = await self._read(self._rows(sql, (request_id,)))
        return _entry(rows[0]) if rows else None

    async def units(self) -> list[str]:
        rows = await self._read(self._rows("SELECT DISTINCT unit FROM requests ORDER BY unit"))
        return [str(r[0]) for r in rows]

    # -- quota counters -----------------------------------------------------------------------

    async def try_consume(self, key: str, start: float, cap: Cap, calls: int, nusd: int) -> bool:
        if not cap.allows(calls, nusd):
            return False
        lc = -1 if cap.calls is None else cap.calls
        ln = -1 if cap.nusd is None else cap.nusd
        sql = (
            "INSERT INTO quota_usage (key, window_start, calls, nusd) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key, window_start) DO UPDATE SET "
            "calls = quota_usage.calls + excluded.calls, nusd = quota_usage.nusd + excluded.nusd "
            "WHERE (? < 0 OR quota_usage.calls + excluded.calls <= ?) "
            "AND (? < 0 OR quota_usage.nusd + excluded.nusd <= ?) RETURNING calls"
        )
        params = (key, start, calls, nusd, lc, lc, ln, ln)
        return await self._write(lambda tx: tx.execute(sql, params).fetchone() is not None)

    async def adjust(self, key: str, window_start: float, calls: int, nusd: int) -> None:
        sql = (
            "INSERT INTO quota_usage (key, window_start, calls, nusd) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key, window_start) DO UPDATE SET "
            "calls = quota_usage.calls + excluded.calls, nusd = quota_usage.nusd + excluded.nusd"
        )
        await self._write(lambda tx: tx.execute(sql, (key, window_start, calls, nusd)))

    async def usage(self, key: str, window_start: float) -> tuple[int, int]:
        rows = await self._read(
            self._rows(
                "SELECT calls, nusd FROM quota_usage WHERE key = ? AND window_start = ?",
                (key, window_start),
            )
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    # -- reviews ------------------------------------------------------------------------------

    async def add_review(self, review: Review, events: Sequence[AuditEvent] = ()) -> None:
        insert = f"INSERT INTO reviews ({REVIEW_COLUMNS}) VALUES ({_marks(17)})"
        entries = unsealed_events(events)

        def write(tx: SQLBatch) -> None:
            tx.insert(insert, _review_row(review))
            tx.seal(entries)

        await self._write(write)

    async def decide_review(
        self,
        review_id: str,
        status: ReviewStatus,
        reviewer: str,
        final_answer: str | None,
        note: str | None,
        events: Sequence[AuditEvent],
        answer: str | None = None,
    ) -> Review:
        select = f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = ?"
        update = (
            "UPDATE reviews SET status = ?, reviewer = ?, final_answer = ?, note = ?, "
            "decided = ?, answer = COALESCE(?, answer) WHERE id = ? AND status = 'pending'"
        )
        entries = unsealed_events(events)

        def write(tx: SQLBatch) -> Review:
            decided = events[0].time if events else 0.0
            changed = tx.execute(
                update, (status, reviewer, final_answer, note, decided, answer, review_id)
            ).rowcount
            row = tx.execute(select, (review_id,)).fetchone()
            if row is None:
                raise NotFound(f"no review '{review_id}'", param="review_id")
            review = _review(row)
            if changed != 1:
                raise Conflict(
                    f"review '{review_id}' was already decided ({review.status} by "
                    f"{review.reviewer or 'unknown'})",
                    param="review_id",
                )
            tx.seal(entries)
            return review

        return await self._write(write)

    async def review(self, review_id: str) -> Review | None:
        rows = await self._read(
            self._rows(f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = ?", (review_id,))
        )
        return _review(rows[0]) if rows else None

    async def store_response(self, response: StoredResponse) -> None:
        insert = (
            "INSERT INTO responses (id, request_id, unit, created, body) VALUES (?, ?, ?, ?, ?)"
        )
        row = (response.id, response.request_id, response.unit, response.created, response.body)

        def write(tx: SQLBatch) -> None:
            tx.insert(insert, row)

        await self._write(write)

    async def stored_response(self, response_id: str) -> StoredResponse | None:
        select = "SELECT id, request_id, unit, created, body FROM responses WHERE id = ?"
        rows = await self._read(self._rows(select, (response_id,)))
        if not rows:
            return None
        rid, request_id, unit, created, body = rows[0]
        return StoredResponse(str(rid), str(request_id), str(unit), float(created), str(body))

    async def reviews(
        self, status: str | None = None, unit: str | None = None, limit: int = 100
    ) -> list[Review]:
        where, params = "1 = 1", list[Any]()
        if status is not None:
            where, params = where + " AND status = ?", [*params, status]
        if unit is not None:
            where, params = where + " AND unit = ?", [*params, unit]
        sql = f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE {where} ORDER BY created LIMIT ?"
        return [_review(row) for row in await self._read(self._rows(sql, [*params, limit]))]

    # -- feedback -----------------------------------------------------------------------------

    async def add_feedback(self, feedback: Feedback, events: Sequence[AuditEvent] = ()) -> None:
        insert = f"INSERT INTO feedback ({FEEDBACK_COLUMNS}) VALUES ({_marks(8)})"
        row = (
            feedback.id,
            feedback.request_id,
            feedback.unit,
            feedback.user,
            feedback.time,
            feedback.score,
            feedback.thumbs,
            feedback.comment,
        )

        entries = unsealed_events(events)

        def write(tx: SQLBatch) -> None:
            tx.insert(insert, row)
            tx.seal(entries)

        await self._write(write)

    async def feedback(self, request_id: str | None = None, limit: int = 10_000) -> list[Feedback]:
        where, params = ("request_id = ?", [request_id]) if request_id else ("1 = 1", [])
        sql = f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE {where} ORDER BY time, id LIMIT ?"
        rows = await self._read(self._rows(sql, [*params, limit]))
        return [
            Feedback(str(i), str(r), str(u), str(us), float(s), th, c, float(t))
            for i, r, u, us, t, s, th, c in rows
        ]

    # -- agents runs' checkpoints -------------------------------------------------------------

    async def save_run(self, run: StoredRun) -> None:
        upsert = (
            "INSERT INTO agent_runs (id, unit, status, updated, state) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET unit = excluded.unit, status = excluded.status, "
            "updated = excluded.updated, state = excluded.state"
        )
        row = (run.id, run.unit, run.status, run.updated, run.state)
        await self._write(lambda tx: tx.execute(upsert, row))

    async def stored_run(self, run_id: str) -> StoredRun | None:
        sql = "SELECT id, unit, status, updated, state FROM agent_runs WHERE id = ?"
        rows = await self._read(self._rows(sql, (run_id,)))
        return StoredRun(*rows[0]) if rows else None

    async def claim_runs(self, status: str, to: str) -> list[StoredRun]:
        select = "SELECT id, unit, status, updated, state FROM agent_runs WHERE status = ?"
        update = "UPDATE agent_runs SET status = ? WHERE id = ? AND status = ?"
        if not await self._read(
            self._rows("SELECT id FROM agent_runs WHERE status = ?", (status,))
        ):
            return []  # nothing to claim: no write transaction (a gateway's every start)

        def write(tx: SQLBatch) -> list[StoredRun]:
            found = [StoredRun(*row) for row in tx.execute(select, (status,)).fetchall()]
            return [r for r in found if tx.execute(update, (to, r.id, status)).rowcount == 1]

        return await self._write(write)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _review_row(r: Review) -> tuple[Any, ...]:
    return (
        r.id,
        r.request_id,
        r.unit,
        r.user,
        r.created,
        r.reason,
        json.dumps(r.evidence),
        r.prompt,
        r.member,
        r.answer,
        json.dumps(r.verdict),
        r.status,
        r.reviewer,
        r.final_answer,
        r.note,
        r.decided,
        json.dumps(r.held) if r.held is not None else None,
    )


def _review(row: Sequence[Any]) -> Review:
    (rid, req, unit, user, created, reason, evidence, prompt, member, answer, verdict) = row[:11]
    status, reviewer, final_answer, note, decided, held = row[11:]
    return Review(
        id=str(rid),
        request_id=str(req),
        unit=str(unit),
        user=str(user),
        created=float(created),
        reason=str(reason),
        evidence=json.loads(evidence),
        prompt=str(prompt),
        member=str(member),
        answer=str(answer),
        verdict=json.loads(verdict),
        status=status,
        reviewer=reviewer,
        final_answer=final_answer,
        note=note,
        decided=float(decided) if decided is not None else None,
        held=json.loads(held) if held is not None else None,
    )


def _entry(row: Sequence[Any]) -> LedgerEntry:
    (rid, t, unit, user, model, member, router, reason, tin, tout, nusd, ms) = row[:12]
    status, error, stream, tags, correlation_id = row[12:]
    return LedgerEntry(
        request_id=str(rid),
        time=float(t),
        unit=str(unit),
        user=str(user),
        model=str(model),
        member=member,
        router=router,
        reason=reason,
        input_tokens=int(tin),
        output_tokens=int(tout),
        cost_usd=from_nano(int(nusd)),
        latency_ms=float(ms),
        status=int(status),
        error=error,
        stream=bool(stream),
        tags=tuple(json.loads(str(tags))),
        correlation_id=correlation_id,
    )
