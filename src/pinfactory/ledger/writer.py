"""The ledger's single writer: one thread, one connection, commits acknowledged after fsync.

Every write is an *operation*, a function of a database cursor. With
``durability: full`` each operation is its own transaction. With
``durability: group`` the writer takes every operation that queued up while
the previous commit was syncing and runs them in one transaction, each under
its own savepoint (one failing operation does not undo the others), then
commits once: one fsync for many requests. Either way an operation's future
resolves only after its commit returned; the futures of one commit are
settled with one wake-up of their event loop, not one each.

A :class:`TransactionState` lets operations share what they read inside one
transaction (the ledger keeps the audit chain's head there: read once and
written once per transaction instead of once per request); the writer tells
it where transactions and savepoints begin, roll back and commit.
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


class Cursor(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def cursor(self) -> Any: ...

    def close(self) -> None: ...


Operation = Callable[[Any], Any]
Pending = tuple[Operation, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
Outcome = tuple["asyncio.Future[Any]", bool, Any]


class TransactionState(Protocol):
    """State kept across the operations of one transaction (see the module docstring)."""

    def begin(self) -> None:
        """A transaction starts (or one was rolled back): forget everything."""

    def mark(self) -> object:
        """A savepoint: what :meth:`restore` returns to if the operation fails."""

    def restore(self, mark: object) -> None: ...

    def flush(self, cur: Any) -> None:
        """Write what the transaction's operations left pending, just before COMMIT."""


class NoState:
    def begin(self) -> None:
        pass

    def mark(self) -> object:
        return None

    def restore(self, mark: object) -> None:
        pass

    def flush(self, cur: Any) -> None:
        pass


class BatchWriter:
    """Runs write operations on one thread; see the module docstring."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        begin: str,
        database_errors: tuple[type[BaseException], ...],
        durability: Durability = "full",
        max_batch: int = 512,
        state: TransactionState | None = None,
    ) -> None:
        self._connect = connect
        self._begin = begin
        self._errors = database_errors
        self._op_errors: tuple[type[BaseException], ...] = (PinfactoryError, *database_errors)
        self.durability = durability
        self._max_batch = max_batch
        self._state: TransactionState = state or NoState()
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0

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
        except BaseException as exc:
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
                    if len(batch) == 1:  # alone: no savepoint needed, exactly `full`
                        self._commit_one(conn, item)
                    else:
                        self._commit_group(conn, batch)
                else:
                    self._commit_one(conn, item)
                if stopping:
                    break
        finally:
            conn.close()

    def _commit_one(self, conn: Connection, item: Pending) -> None:
        op, loop, future = item
        cur = conn.cursor()
        self._state.begin()
        try:
            cur.execute(self._begin)
            result = op(cur)
            self._state.flush(cur)
            cur.execute("COMMIT")
        except BaseException as exc:
            self._state.begin()
            self._rollback(cur)
            _settle(loop, [(future, False, self._ledger_error(exc))])
            return
        self.commits += 1
        _settle(loop, [(future, True, result)])

    def _commit_group(self, conn: Connection, batch: list[Pending]) -> None:
        cur = conn.cursor()
        outcomes: list[tuple[bool, Any]] = []
        state = self._state
        state.begin()
        try:
            cur.execute(self._begin)
            for op, _, _ in batch:
                cur.execute("SAVEPOINT op")
                mark = state.mark()
                try:
                    outcomes.append((True, op(cur)))
                    cur.execute("RELEASE SAVEPOINT op")
                except self._op_errors as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT op")
                    cur.execute("RELEASE SAVEPOINT op")
                    state.restore(mark)
                    outcomes.append((False, self._ledger_error(exc)))
            state.flush(cur)
            cur.execute("COMMIT")
        except BaseException as exc:
            state.begin()
            self._rollback(cur)
            error = self._ledger_error(exc)
            outcomes = [(False, error)] * len(batch)
        else:
            self.commits += 1
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for (ok, value), (_, loop, future) in zip(outcomes, batch, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, settled in by_loop.items():
            _settle(loop, settled)

    def _rollback(self, cur: Any) -> None:
        with contextlib.suppress(*self._errors):
            cur.execute("ROLLBACK")

    def _ledger_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, PinfactoryError):
            return exc
        if isinstance(exc, self._errors):
            return LedgerError(f"ledger write failed: {exc}")
        return exc


def _settle(loop: asyncio.AbstractEventLoop, outcomes: list[Outcome]) -> None:
    """Hand committed outcomes to their event loop: one thread-safe call per commit."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
        loop.call_soon_threadsafe(_resolve, outcomes)


def _resolve(outcomes: list[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller was cancelled; the write stands
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
