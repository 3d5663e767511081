"""The ledger's single writer: one thread, one connection, commits acknowledged after fsync.

Every write is an *operation*, a function of a :class:`Batch` (one open
transaction). With ``durability: full`` each operation gets its own
transaction. With ``durability: group`` the writer takes every operation that
queued up while the previous commit was syncing and runs them all in one
transaction: one fsync for many requests. The batch reads the chain head once,
buffers the operations' inserts and writes them together at commit
(``executemany``, in a PostgreSQL pipeline), so a batch costs a few round
trips, not a few per operation.

If anything in a group batch fails, the whole transaction rolls back and its
operations run again one by one, each in its own transaction: a bad operation
gets its own error and the others still commit. Either way an operation's
future resolves only after its commit returned; a commit's futures are settled
with one wake-up of their event loop, not one each.

With ``durability: journal`` the requests' records are *posted* (:meth:`BatchWriter.post`):
already in the journal (``journal.py``), nobody waits for them; they are batched as in
``group``, and a batch of them waits up to :data:`LINGER_S` for more before it commits
(a lone client's requests would otherwise cost one commit each). A write someone waits
for (any ``submit``, :meth:`BatchWriter.flush`) ends the wait: it commits at once.
A posted operation that fails on its own is retried, with backoff, until it
commits or the writer stops (its record then stays in the journal for the next start):
it is never dropped. :meth:`BatchWriter.flush` waits until everything posted so far is
committed, so a read in this process sees its own writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal, Protocol, TypeVar

from pinfactory.errors import LedgerError, PinfactoryError

T = TypeVar("T")
Durability = Literal["full", "group", "journal"]
log = logging.getLogger("pinfactory.ledger")
LINGER_S = 0.02
"""How long the writer holds a batch of journaled writes for more before it commits (s)."""
RETRY_S = (0.05, 0.2, 1.0, 5.0)  # a posted write that fails alone waits this long, then again


class Connection(Protocol):
    def cursor(self) -> Any: ...

    def close(self) -> None: ...


class Batch(Protocol):
    """One open transaction that operations write through."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


Operation = Callable[[Any], Any]
# a submitted operation has its caller's loop and future; a posted one has neither
Item = tuple[Operation, asyncio.AbstractEventLoop | None, "asyncio.Future[Any] | None"]
Outcome = tuple["asyncio.Future[Any]", bool, Any]


class BatchWriter:
    """Runs write operations on one thread; see the module docstring."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        begin: Callable[[Connection], Batch],
        database_errors: tuple[type[BaseException], ...],
        durability: Durability = "full",
        max_batch: int = 512,
        after_commit: Callable[[Any], None] | None = None,
        linger_s: float | None = None,
    ) -> None:
        self._connect = connect
        self._begin = begin
        self._errors = database_errors
        self.durability = durability
        self._max_batch = max_batch
        # how long a batch of posted operations waits for company (journal only)
        self.linger_s = (
            (LINGER_S if durability == "journal" else 0.0) if linger_s is None else linger_s
        )
        self._after_commit = after_commit
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._urgent = threading.Event()  # ends a linger: a write someone waits for, or stop
        self._abandoned = False  # a posted write was given up: later ones must wait too
        self.commits = 0
        self.replays = 0
        self.posted = 0  # operations posted (event loop's thread)
        self.posted_committed = 0  # of those, committed (writer's thread)

    def start(self) -> None:
        """Connect on the writer thread; raise here if the database cannot be opened."""
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="ledger-writer")
        self._thread.daemon = True
        self._thread.start()
        ready.result()

    def stop(self) -> None:
        """Commit what is queued, then stop. A posted write that fails now is not retried:
        it and every posted write after it stay uncommitted (their records stay in the
        journal, whose marks never pass them), so the next start commits them in order."""
        if self._thread is not None:
            self._stopping.set()
            self._queue.put(None)
            self._urgent.set()
            self._thread.join()
            self._thread = None

    @property
    def drained(self) -> bool:
        """Every posted operation is committed."""
        return self.posted == self.posted_committed

    async def submit(self, op: Callable[[Any], T]) -> T:
        if self._thread is None:
            raise LedgerError("ledger is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, loop, future))
        self._urgent.set()  # a lingering batch commits now, with this one
        return await future

    def post(self, op: Callable[[Any], Any]) -> None:
        """Queue ``op`` without waiting for it (its record is in the journal already)."""
        if self._thread is None:
            raise LedgerError("ledger is not open")
        self.posted += 1
        self._queue.put((op, None, None))

    async def flush(self) -> None:
        """Wait until every operation posted before this call is committed."""
        if not self.drained:
            await self.submit(_nothing)

    def _run(self, ready: Future[None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # relayed to open(), which re-raises it
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while (item := self._queue.get()) is not None:
                batch = [item]
                stopping = self.durability != "full" and self._gather(batch)
                if self._abandoned:
                    self._refuse(batch)
                elif not self._commit(conn, batch):
                    if len(batch) > 1:
                        self.replays += 1
                    for one in batch:  # alone, each: a posted one that fails is retried
                        if self._abandoned:
                            self._refuse([one])
                        elif len(batch) == 1 or not self._commit(conn, [one]):
                            self._retry(conn, one)
                if stopping:
                    break
        finally:
            self._stopping.set()
            conn.close()

    def _gather(self, batch: list[Item]) -> bool:
        """Add what else is queued to ``batch`` (up to the batch size); True if the stop
        sign came. A batch of posted operations first waits ``linger_s`` for more: nobody
        waits for it, and one commit per request would spend the writer's time (and the
        event loop's, through the GIL) on commits a lone client does not need. Posts do not
        wake the writer while it lingers; a write someone waits for, or the stop, does."""
        lingered = self.linger_s <= 0 or any(future is not None for _, _, future in batch)
        while len(batch) < self._max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                if lingered:
                    return False
                lingered = True
                self._urgent.wait(self.linger_s)
                self._urgent.clear()
                continue
            if more is None:
                return True
            batch.append(more)
            lingered = lingered or more[2] is not None
        return False

    def _retry(self, conn: Connection, item: Item) -> None:
        """A posted operation failed alone: try again, with backoff, until it commits or
        the writer is stopping (its record stays in the journal: replayed next start)."""
        for attempt in itertools.count():
            delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
            log.error("ledger: a journaled write failed; retrying in %.2f s", delay)
            if self._stopping.wait(delay):
                self._abandoned = True
                return
            if self._commit(conn, [item]):
                return

    def _refuse(self, items: list[Item]) -> None:
        stopped = LedgerError("the ledger's writer stopped with a journaled write uncommitted")
        _settle(items, [(False, stopped)] * len(items))

    def _commit(self, conn: Connection, items: list[Item]) -> bool:
        """Run ``items`` in one transaction; False (futures untouched) if a batch, or a
        posted operation alone, failed."""
        tx: Batch | None = None
        try:
            tx = self._begin(conn)
            results = [op(tx) for op, _, _ in items]
            tx.commit()
        # Broad on purpose: any failure of an op belongs to its callers' futures, which
        # re-raise it; the writer thread itself must keep serving the queue.
        except BaseException as exc:
            if tx is not None:
                self._rollback(tx)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                pass
            elif len(items) > 1 or items[0][2] is None:
                return False
            error = self._ledger_error(exc)
            _settle(items, [(False, error)] * len(items))
            return True
        self.commits += 1
        self.posted_committed += sum(1 for _, _, future in items if future is None)
        if self._after_commit is not None:
            self._after_commit(tx)
        _settle(items, [(True, result) for result in results])
        return True

    def _rollback(self, tx: Batch) -> None:
        with contextlib.suppress(*self._errors):
            tx.rollback()

    def _ledger_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, PinfactoryError):
            return exc
        if isinstance(exc, self._errors):
            return LedgerError(f"ledger write failed: {exc}")
        return exc


def _settle(items: list[Item], outcomes: list[tuple[bool, Any]]) -> None:
    """Hand a commit's outcomes to their event loops: one wake-up per loop, not per write."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for (_, loop, future), (ok, value) in zip(items, outcomes, strict=True):
        if loop is not None and future is not None:  # a posted operation: nobody waits
            by_loop.setdefault(loop, []).append((future, ok, value))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_resolve, settled)


def _resolve(outcomes: list[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller was cancelled; the write stands
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _nothing(_: Any) -> None:
    """The operation :meth:`BatchWriter.flush` waits for: it commits after the posted ones."""
