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
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal, Protocol, TypeVar

from pinfactory.errors import LedgerError, PinfactoryError

T = TypeVar("T")
Durability = Literal["full", "group"]


class Connection(Protocol):
    def cursor(self) -> Any: ...

    def close(self) -> None: ...


class Batch(Protocol):
    """One open transaction that operations write through."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


Operation = Callable[[Any], Any]
Item = tuple[Operation, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
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
    ) -> None:
        self._connect = connect
        self._begin = begin
        self._errors = database_errors
        self.durability = durability
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.replays = 0

    def start(self) -> None:
        """Connect on the writer thread; raise here if the database cannot be opened."""
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="ledger-writer")
        self._thread.daemon = True
        self._thread.start()
        ready.result()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    async def submit(self, op: Callable[[Any], T]) -> T:
        if self._thread is None:
            raise LedgerError("ledger is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((op, loop, future))
        return await future

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
                stopping = False
                if self.durability == "group":
                    while len(batch) < self._max_batch:
                        try:
                            more = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if more is None:
                            stopping = True
                            break
                        batch.append(more)
                if not self._commit(conn, batch) and len(batch) > 1:
                    self.replays += 1
                    for one in batch:
                        self._commit(conn, [one])
                if stopping:
                    break
        finally:
            conn.close()

    def _commit(self, conn: Connection, items: list[Item]) -> bool:
        """Run ``items`` in one transaction; False (futures untouched) if a batch failed."""
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
            if len(items) > 1 and not isinstance(exc, KeyboardInterrupt | SystemExit):
                return False
            error = self._ledger_error(exc)
            _settle(items, [(False, error)] * len(items))
            return True
        self.commits += 1
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
