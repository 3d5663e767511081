"""The audit chain: every entry sealed with the hash of the one before it.

An entry's ``body`` is the canonical JSON (sorted keys, compact, UTF-8) of
its sequence number, request id, kind, time and payload; its hash is
``SHA-256(prev_hash + body)``. Editing a body breaks its own hash; deleting,
inserting or reordering entries breaks the next entry's link; removing
entries from the end disagrees with the stored chain head. :func:`verify`
finds the first of these.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from hashlib import sha256
from typing import Any

import orjson

from pinfactory.ledger.base import (
    AuditEvent,
    AuditRecord,
    ChainHead,
    Ledger,
    LedgerEntry,
    SealedRow,
)

GENESIS = "0" * 64


def canonical(value: Any) -> str:
    """Sorted-key compact JSON: one byte string per value, whatever the dict order.

    orjson writes it (UTF-8, no ASCII escapes, shortest round-trip floats); values
    orjson does not take (integers past 64 bits, non-string keys) fall back to the
    standard library with the same settings. Verification only re-hashes the
    stored bodies, so either writer's output verifies.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )


def digest(text: str) -> str:
    """How an audit entry names a text it does not store (a prompt, an answer)."""
    return "sha256:" + sha256(text.encode()).hexdigest()


def jsonable(value: Any) -> Any:
    """Plain JSON data from what pipeline stages carry: dataclasses, pydantic, Decimal...

    orjson walks the value in C, asking :func:`_one_level` only about what it does not
    take itself (dataclasses, so that a ``to_json`` is preferred as below, Decimal,
    datetimes, sets, pydantic models); what it refuses outright (a key that is not a
    string, an integer past 64 bits) goes through :func:`_jsonable`, which gives the same
    data for everything else and is the reference for what the result is.
    """
    try:
        return orjson.loads(orjson.dumps(value, default=_one_level, option=_ASK))
    except TypeError:
        return _jsonable(value)


_ASK = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _one_level(value: Any) -> Any:
    """``value`` one level nearer JSON, as :func:`_jsonable` converts it (orjson goes on)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if hasattr(value, "items"):
        return dict(value.items())
    return str(value)


_PLAIN = frozenset({str, int, bool, type(None)})


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:  # exact types first: most of an audit payload, at one lookup each
        return value
    if kind is dict:
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return _jsonable(to_json())
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return _jsonable(model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def link(prev_hash: str, body: str) -> str:
    return sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Unsealed:
    """An audit entry serialized but for its place in the chain: its body is
    ``before + str(seq) + after``, the canonical JSON of ``{kind, payload, request_id,
    seq, time}`` (sorted keys put ``seq`` between the request id and the time).

    Made where the event is (the request's thread), once: sealing it on the writer's
    thread is then a string join and a hash, whatever the payload holds.
    """

    kind: str
    request_id: str
    before: str
    after: str


def unsealed(kind: str, request_id: str, payload: Any, time: float) -> Unsealed:
    """The entry for one event (``payload`` converted as :func:`jsonable` converts it).

    One orjson call writes the whole body with ``seq`` 0; the body splits around the last
    ``,"seq":0,``, which is the seq's own: only the time, a number, follows it.
    """
    entry = {"kind": kind, "payload": payload, "request_id": request_id, "seq": 0, "time": time}
    try:
        body = orjson.dumps(entry, default=_one_level, option=_CANONICAL).decode()
    except TypeError:  # what orjson refuses outright: the reference conversion
        body = canonical(_jsonable(entry))
    before, _, after = body.rpartition(_SEQ)
    return Unsealed(kind, request_id, before + ',"seq":', "," + after)


_SEQ = ',"seq":0,'
_CANONICAL = _ASK | orjson.OPT_SORT_KEYS


def unsealed_events(events: Iterable[AuditEvent]) -> list[Unsealed]:
    return [unsealed(e.kind, e.request_id, e.payload, e.time) for e in events]


def seal(
    entries: Iterable[Unsealed], head: ChainHead
) -> tuple[list[tuple[int, str, str, str, str, str]], ChainHead]:
    """The ``audit`` rows (seq, request id, kind, body, previous hash, hash) that append
    ``entries`` after ``head``, in order, and the chain's new head."""
    rows = []
    seq, prev = head.seq, head.hash
    for entry in entries:
        seq += 1
        body = f"{entry.before}{seq}{entry.after}"
        digest = sha256((prev + body).encode()).hexdigest()
        rows.append((seq, entry.request_id, entry.kind, body, prev, digest))
        prev = digest
    return rows, ChainHead(seq, prev)


def payload(record: AuditRecord) -> dict[str, Any]:
    data = json.loads(record.body)["payload"]
    return data if isinstance(data, dict) else {"value": data}


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :func:`verify` found: entries checked and the first break, if any.

    ``broken_row`` is set when the chain is whole but a ``requests`` row
    disagrees with the entry that sealed it (``broken_seq`` is that entry).
    """

    checked: int
    broken_seq: int | None = None
    problem: str | None = None
    broken_row: int | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


class ChainWalk:
    """Checks records fed in chain order; stops at the first break."""

    def __init__(self) -> None:
        self.checked = 0
        self.last = ChainHead(0, GENESIS)
        self.report: ChainReport | None = None

    def feed(self, records: Iterable[AuditRecord]) -> bool:
        """Check more records; False once the chain is broken."""
        for record in records:
            problem = self._problem(record)
            if problem is not None:
                self.report = ChainReport(self.checked, record.seq, problem)
                return False
            self.checked += 1
            self.last = ChainHead(record.seq, record.hash)
        return True

    def _problem(self, record: AuditRecord) -> str | None:
        where = f"entry {record.seq} ({record.kind} of {record.request_id or '-'})"
        try:
            body = json.loads(record.body)
            sealed = (body["seq"], body["request_id"], body["kind"])
        except (ValueError, KeyError, TypeError):
            return f"{where}: body is not a sealed audit entry (edited)"
        if sealed != (record.seq, record.request_id, record.kind):
            return f"{where}: columns differ from the sealed body (edited or moved)"
        if link(record.prev_hash, record.body) != record.hash:
            return f"{where}: content does not match its hash (edited)"
        if record.prev_hash != self.last.hash:
            return (
                f"{where}: does not link to entry {self.last.seq} before it "
                "(an entry was deleted, inserted or reordered)"
            )
        if record.seq != self.last.seq + 1:
            return f"{where}: sequence jumps from {self.last.seq} (an entry was deleted)"
        return None

    def finish(self, head: ChainHead) -> ChainReport:
        if self.report is not None:
            return self.report
        if head != self.last:
            return ChainReport(
                self.checked,
                self.last.seq + 1 if head.seq > self.last.seq else self.last.seq,
                f"chain head is entry {head.seq} but the chain ends at entry {self.last.seq} "
                "(entries removed from the end, or the head edited)",
            )
        return ChainReport(self.checked)


async def verify(pages: AsyncIterator[Sequence[AuditRecord]], head: ChainHead) -> ChainReport:
    """Walk the whole chain page by page; report the first broken entry."""
    walk = ChainWalk()
    async for page in pages:
        if not walk.feed(page):
            break
    return walk.finish(head)


def row_figures(entry: LedgerEntry, cost_nusd: int) -> dict[str, Any]:
    """What the chain seals of a ``requests`` row (:data:`SEALED_ROW_FIELDS`);
    ``cost_nusd`` is the entry's cost as the row stores it (``to_nano``)."""
    return {
        "status": entry.status,
        "cost_nusd": cost_nusd,
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "unit": entry.unit,
        "member": entry.member,
    }


CLOSING_KINDS = frozenset({"response", "error"})
"""The entries a request's chain segment ends with; they carry the row's sealed figures
(under ``row``); a write whose events end otherwise gets a ``row`` entry of its own
(``ledger.record.prepare``). The ``requests`` row points at that entry (``sealed_seq``)."""


def row_problem(row: SealedRow) -> str | None:
    """How a ``requests`` row differs from the audit entry that sealed it, if it does."""
    where = f"requests row {row.seq} (request {row.request_id})"
    if row.sealed_seq is None or row.sealed_body is None:
        return f"{where}: not linked to a sealed audit entry (edited or inserted)"
    if row.sealed_request_id != row.request_id:
        return f"{where}: its sealed entry {row.sealed_seq} belongs to another request (edited)"
    try:
        body = json.loads(row.sealed_body)
        sealed, kind = body["payload"], body["kind"]
    except (ValueError, KeyError, TypeError):
        return f"{where}: its sealed entry {row.sealed_seq} is not readable (edited)"
    if isinstance(sealed, dict) and kind in CLOSING_KINDS:
        sealed = sealed.get("row")
    elif kind != "row":
        sealed = None
    if not isinstance(sealed, dict):
        return f"{where}: entry {row.sealed_seq} does not seal a row (edited)"
    changed = [
        f"{name} {row.row.get(name)!r} != sealed {sealed.get(name)!r}"
        for name in SEALED_ROW_FIELDS
        if row.row.get(name) != sealed.get(name)
    ]
    if changed:
        return f"{where}: {', '.join(changed)} (edited)"
    return None


SEALED_ROW_FIELDS = ("status", "cost_nusd", "input_tokens", "output_tokens", "unit", "member")
"""The row's figures its sealing entry holds (:func:`sealing`)."""


async def verify_ledger(ledger: Ledger, page: int = 5000) -> ChainReport:
    """Verify a ledger's whole chain against its stored head, then every ``requests`` row
    against the audit entry that sealed its figures (cost, tokens, status, unit, member)."""
    head = await ledger.head()

    async def pages() -> AsyncIterator[list[AuditRecord]]:
        after = 0
        while records := await ledger.audit(after=after, limit=page):
            yield records
            after = records[-1].seq

    report = await verify(pages(), head)
    if not report.intact:
        return report
    after = 0
    while rows := await ledger.sealed_rows(after=after, limit=page):
        for row in rows:
            problem = row_problem(row)
            if problem is not None:
                return ChainReport(report.checked, row.sealed_seq, problem, broken_row=row.seq)
        after = rows[-1].seq
    return report
