"""The ledger's journal: request records acknowledged before their commit (``durability: journal``).

With ``durability: journal`` a request's row and chain segment are written to an
append-only file of this process (one frame copied into its memory map, no fsync) and
the request is answered at once; the ledger's writer commits the records in groups off
the request's path (``writer.py``). Each commit also stores, in the same
transaction, how far into the journal file it reached (table ``journal_marks``).

What that guarantees:

- **The process dying loses nothing.** A frame is in the operating system's page
  cache before the client gets its answer, so ``kill -9`` (or a crash) of the
  gateway keeps it. The next process that opens the ledger with a journal folder
  claims every journal file no live process holds (each process holds an exclusive
  ``flock`` on its own, which the kernel releases when it dies), commits the frames
  after the file's mark, then deletes the file. The mark moves in the same
  transaction as the rows, so no frame is committed twice or skipped.
- **A power loss or kernel crash** can lose the frames the kernel had not yet
  written to disk: at most what was acknowledged since the last commit (the writer
  commits continuously, holding a batch at most ``writer.LINGER_S`` for more).
  ``full`` and ``group`` answer only after the fsync and do not have this window.
- **Budgets and quotas are unchanged**: reservations and settlements are separate,
  awaited writes (``spend.py``); only the request's row and chain segment are deferred.

A frame is ``length (4 bytes, little-endian) + CRC-32 (4 bytes) + payload``; a
torn or corrupt frame ends the file's replay (it was never acknowledged: the answer
is sent after the write returns). The payload is the record as JSON (:func:`encode`): the
request's row and its chain entries serialized as the writer commits them
(``ledger.record``), so a replay seals exactly the bodies the live process would have.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import secrets
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import orjson

from pinfactory.errors import LedgerError
from pinfactory.ledger.base import AuditEvent, LedgerEntry
from pinfactory.ledger.chain import Unsealed
from pinfactory.ledger.record import Prepared, prepare

FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
SUFFIX = ".journal"
FILE_BYTES = 16 * 1024 * 1024  # each journal file, allocated whole; then a new one


@dataclass(frozen=True, slots=True)
class Position:
    """Where a frame ends: the journal file's name and the offset after the frame."""

    journal: str
    end: int


def encode(record: Prepared) -> bytes:
    """A prepared record as JSON: the row's values and each chain entry's kind, request
    id and serialized body around its place (``ledger.record``), as the writer commits it."""
    entries = [[e.kind, e.request_id, e.before, e.after] for e in record.entries]
    return orjson.dumps({"row": record.row, "entries": entries})


def decode(payload: bytes) -> Prepared:
    """The record :func:`encode` wrote (or the format before it: the row's fields by name
    and each event's payload, prepared here as they were then)."""
    data = orjson.loads(payload)
    if "entries" in data:
        entries = [Unsealed(*entry) for entry in data["entries"]]
        return Prepared(tuple(data["row"]), entries)
    row = data["row"]
    entry = LedgerEntry(**{**row, "cost_usd": Decimal(row["cost_usd"]), "tags": tuple(row["tags"])})
    events = [AuditEvent(kind, rid, body, time=t) for kind, rid, t, body in data["events"]]
    return prepare(entry, events)


def frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(end offset, payload)`` of each whole frame, stopping at the zeros after the
    last one, or at a torn or corrupt one."""
    offset = 0
    while offset + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, offset)
        start, end = offset + FRAME.size, offset + FRAME.size + length
        if length == 0 or end > len(data) or zlib.crc32(data[start:end]) != crc:
            return
        yield end, data[start:end]
        offset = end


@dataclass
class Orphan:
    """A journal file left by a process that died (its lock was free), held locked."""

    name: str
    path: Path
    fd: int

    def read(self, after: int) -> list[tuple[int, bytes]]:
        """Frames that end after offset ``after`` (those the ledger has not committed)."""
        data = self.path.read_bytes()
        return [(end, payload) for end, payload in frames(data) if end > after]

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)


@dataclass
class _File:
    """One journal file of this process: its descriptor (holding the lock) and mapping."""

    name: str
    fd: int
    map: mmap.mmap
    size: int = 0  # bytes of frames written

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


class Journal:
    """This process's journal file in ``folder``, and the orphans it claims there.

    A file is allocated at its full size up front (``posix_fallocate``) and written
    through a shared memory map: an append is a copy into the page cache, with no
    system call and without releasing the GIL (a ``write`` call did both, and
    getting the GIL back behind the ledger's writer thread cost the event loop more
    than the write). Past the last frame the file holds zeros, which end a replay.
    :meth:`append` runs on the event loop's thread; the writer thread reports commits
    with :meth:`committed`, which deletes a file rotated away once all of it is committed.
    """

    def __init__(self, folder: Path, file_bytes: int = FILE_BYTES) -> None:
        self.folder = folder
        self.file_bytes = file_bytes
        self._file: _File | None = None
        self._lock = threading.Lock()  # appends on the loop's thread, commits on the writer's
        self._retired: dict[str, _File] = {}  # rotated away, not yet wholly committed
        self._committed: dict[str, int] = {}  # name -> offset committed so far
        self.removed: list[str] = []  # files deleted whose marks can go

    @property
    def name(self) -> str:
        return self._file.name if self._file is not None else ""

    def open(self) -> list[Orphan]:
        """Create this process's file and claim the files of processes that died."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            orphans = self._claim()
            self._file = self._new_file()
        except OSError as exc:
            raise LedgerError(f"cannot open the ledger journal in {self.folder}: {exc}") from exc
        return orphans

    def _claim(self) -> list[Orphan]:
        orphans = []
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # its owner closed cleanly meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process's
                os.close(fd)
                continue
            orphans.append(Orphan(path.name, path, fd))
        return orphans

    def _new_file(self) -> _File:
        """A new file, allocated and locked before it gets the name other processes look for."""
        name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        fresh = self.folder / (name + ".new")
        fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.posix_fallocate(fd, 0, self.file_bytes)  # a full disk fails here, not mid-frame
            mapped = mmap.mmap(fd, self.file_bytes)
            os.rename(fresh, self.folder / name)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                fresh.unlink()
            raise
        return _File(name, fd, mapped)

    def append(self, payload: bytes) -> Position:
        """Write one frame; where it ends. Raises :class:`LedgerError` if it cannot."""
        file = self._file
        if file is None:
            raise LedgerError("the ledger journal is not open")
        frame = FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        if len(frame) >= self.file_bytes:
            raise LedgerError(f"a ledger record of {len(frame)} bytes does not fit the journal")
        if file.size + len(frame) >= self.file_bytes:  # keep a zero header after the last
            try:
                file = self._rotate()
            except OSError as exc:
                raise LedgerError(f"cannot start a new ledger journal file: {exc}") from exc
        start = file.size
        file.map[start : start + len(frame)] = frame
        file.size = start + len(frame)
        return Position(file.name, file.size)

    def _rotate(self) -> _File:
        fresh = self._new_file()
        with self._lock:
            old, self._file = self._file, fresh
            assert old is not None
            self._retired[old.name] = old
            self._drop_if_done(old.name)
        return fresh

    def committed(self, journal: str, end: int) -> None:
        """The writer committed ``journal`` up to ``end`` (on its thread): a rotated file
        wholly committed is deleted, and its name added to :attr:`removed`."""
        with self._lock:
            self._committed[journal] = max(end, self._committed.get(journal, 0))
            self._drop_if_done(journal)

    def _drop_if_done(self, journal: str) -> None:
        retired = self._retired.get(journal)
        if retired is None or self._committed.get(journal, 0) < retired.size:
            return
        del self._retired[journal]
        self._committed.pop(journal, None)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / journal).unlink()
        retired.close()
        self.removed.append(journal)

    def close(self, *, drained: bool) -> str | None:
        """Close the file; delete it when ``drained`` (all committed). Its name if deleted."""
        file, self._file = self._file, None
        if file is None:
            return None
        gone = None
        if drained:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / file.name).unlink()
            gone = file.name
        file.close()
        for retired in self._retired.values():  # not wholly committed: replayed next start
            retired.close()
        self._retired.clear()
        return gone


def journal_folder(location: str, configured: str | None) -> Path:
    """Where a ledger's journal lives: ``configured``, else beside a SQLite file
    (``<file>-pending``), else ``pinfactory-ledger-pending`` in the working folder."""
    if configured:
        return Path(configured)
    if location.startswith(("postgresql://", "postgres://")) or "dbname=" in location:
        return Path("pinfactory-ledger-pending")
    return Path(location + "-pending")
