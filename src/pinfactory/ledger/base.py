"""What the ledger records for every request, and the interface of its stores."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

NANO = Decimal("1e-9")


def to_nano(usd: Decimal) -> int:
    """Dollars as integer nano-dollars: exact sums, and a cheap call still counts."""
    return int((usd / NANO).to_integral_value())


def from_nano(nano: int) -> Decimal:
    return (Decimal(nano) * NANO).normalize() if nano else Decimal(0)


@dataclass(slots=True)
class LedgerEntry:
    """One request, answered or refused. ``status`` is the HTTP status sent.

    Not frozen, like :class:`AuditEvent`: both are made for every request, and a frozen
    dataclass sets each field through ``object.__setattr__`` (about 1,300 instructions
    more per field under callgrind: some 40,000 per request for these two). Nothing
    changes them once made; nothing hashes them.
    """

    request_id: str
    unit: str
    user: str
    model: str
    member: str | None
    router: str | None
    reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: float
    status: int
    error: str | None = None
    stream: bool = False
    tags: tuple[str, ...] = ()
    time: float = field(default_factory=time.time)
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class SealedRow:
    """A ``requests`` row beside the audit entry that sealed its figures.

    ``row`` holds the row's status, cost (``cost_nusd``), tokens, unit and
    member as stored; ``sealed_body`` is the body of entry ``sealed_seq``
    (None for rows written before figures were sealed).
    """

    seq: int
    request_id: str
    row: Mapping[str, Any]
    sealed_seq: int | None
    sealed_request_id: str | None
    sealed_body: str | None


@dataclass(frozen=True, slots=True)
class SpendRow:
    key: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(slots=True)
class AuditEvent:
    """One step of a request's decision chain, before it is sealed into the chain.

    ``kind`` names the step (``decision``, ``call``, ``verdict``, ``escalation``,
    ``review.overridden``...), ``payload`` is JSON-able data about it.
    """

    kind: str
    request_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An entry of the audit chain as stored: ``body`` is the sealed canonical JSON."""

    seq: int
    request_id: str
    kind: str
    body: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last sealed entry: where the next one links to."""

    seq: int
    hash: str


ReviewStatus = Literal["pending", "approved", "overridden"]


@dataclass(frozen=True, slots=True)
class Review:
    """An escalated answer waiting for (or decided by) a person."""

    id: str
    request_id: str
    unit: str
    user: str
    created: float
    reason: str
    evidence: Any
    prompt: str
    member: str
    answer: str
    verdict: Any = None
    status: ReviewStatus = "pending"
    reviewer: str | None = None
    final_answer: str | None = None
    note: str | None = None
    decided: float | None = None
    held: Any = None  # a request held by a queue policy, to run on approval (queued.py)

    @property
    def released_answer(self) -> str | None:
        """What the client may see: nothing while pending, else the approved or new answer."""
        if self.status == "approved":
            return self.answer
        return self.final_answer if self.status == "overridden" else None


Thumbs = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class Feedback:
    """A caller's judgement of one answered request (``POST /v1/feedback``).

    ``score`` is in [0, 1] (thumbs up is 1, down is 0); ``thumbs`` is set when the
    caller gave thumbs rather than a score; ``unit`` is the request's unit, checked
    against the caller's key before anything is stored.
    """

    id: str
    request_id: str
    unit: str
    user: str
    score: float
    thumbs: Thumbs | None = None
    comment: str | None = None
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Cap:
    """What a spend counter's window may hold: calls and nano-USD (None: no limit)."""

    calls: int | None = None
    nusd: int | None = None

    def allows(self, calls: int, nusd: int) -> bool:
        """Whether usage of ``calls`` and ``nusd`` is within both limits."""
        return (self.calls is None or calls <= self.calls) and (
            self.nusd is None or nusd <= self.nusd
        )


@dataclass(frozen=True, slots=True)
class StoredRun:
    """An agents run's checkpoint (``pinfactory.agents``): the run's whole state as JSON,
    with the fields it is looked up by. ``updated`` is epoch seconds."""

    id: str
    unit: str
    status: str
    updated: float
    state: str


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A ``/v1/responses`` answer kept for ``previous_response_id`` and retrieval: the
    unit it belongs to (only that unit may read it), the request that made it, when
    (Unix seconds), and ``body``, the JSON the responses endpoint wrote (the conversation
    so far and the response object)."""

    id: str
    request_id: str
    unit: str
    created: float
    body: str


class QuotaCounter(Protocol):
    """Spend counters: usage (calls, nano-USD) per key and window."""

    async def try_consume(self, key: str, start: float, cap: Cap, calls: int, nusd: int) -> bool:
        """Atomically add (calls, nusd) to the usage of `key` in the window starting at
        `start` (epoch seconds) only if the result stays within `cap`; return whether
        it was added."""

    async def adjust(self, key: str, window_start: float, calls: int, nusd: int) -> None:
        """Add usage without a limit check (negative gives usage back)."""


class Ledger(QuotaCounter, Protocol):
    """Where every request, its audit chain, quota usage and reviews are written.

    Stores open in the app's lifespan. Every write returns only once it is
    committed (alone, or with a group of concurrent writes in one commit).
    """

    location: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def record(self, entry: LedgerEntry, events: Sequence[AuditEvent] = ()) -> None:
        """Durably write the entry and seal its audit events into the chain, in one commit."""

    async def append(self, events: Sequence[AuditEvent]) -> None:
        """Seal events that belong to no new request row (e.g. a reviewer's action)."""

    async def spend(
        self, by: str, since: float | None = None, unit: str | None = None
    ) -> list[SpendRow]:
        """Spend grouped by ``unit``, ``user``, ``member`` or ``tag``; one unit's only if given."""

    async def entries(self, limit: int = 100) -> list[LedgerEntry]:
        """The most recent entries, newest first."""

    async def units(self) -> list[str]:
        """Every unit that has a request in the ledger."""

    async def audit(
        self, request_id: str | None = None, after: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        """Chain entries in order: all of them (paged by ``after``) or one request's."""

    async def head(self) -> ChainHead:
        """The chain head as stored."""

    async def sealed_rows(self, after: int = 0, limit: int = 1000) -> list[SealedRow]:
        """``requests`` rows after row ``after`` (by seq), each with its sealing entry."""

    async def usage(self, key: str, window_start: float) -> tuple[int, int]:
        """(calls, nano-dollars) used by ``key`` in the window."""

    async def add_review(self, review: Review, events: Sequence[AuditEvent] = ()) -> None: ...

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
        """Decide a pending review and seal the reviewer's action in the same commit.

        ``answer``, if given, becomes the review's answer (a held request's, once run).

        Raises NotFound for an unknown id, Conflict for one already decided.
        """

    async def review(self, review_id: str) -> Review | None: ...

    async def entry(self, request_id: str) -> LedgerEntry | None:
        """The ``requests`` row of one request (the last, if it has several), or None."""

    async def add_feedback(self, feedback: Feedback, events: Sequence[AuditEvent] = ()) -> None:
        """Store one feedback row and seal ``events`` (its ``feedback`` entry) in one commit."""

    async def feedback(self, request_id: str | None = None, limit: int = 10_000) -> list[Feedback]:
        """Feedback rows, oldest first: every request's, or one request's."""

    async def audit_kinds(
        self, kinds: Sequence[str], after: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        """Chain entries of the given kinds after entry ``after``, in order (paged by seq)."""

    async def save_run(self, run: StoredRun) -> None:
        """Insert or replace an agents run's checkpoint."""

    async def stored_run(self, run_id: str) -> StoredRun | None:
        """An agents run's last checkpoint, if any."""

    async def claim_runs(self, status: str, to: str) -> list[StoredRun]:
        """Move every run whose status is ``status`` to ``to`` and return them (as they
        were); two processes claiming at once each get different runs."""

    async def store_response(self, response: StoredResponse) -> None:
        """Keep a responses answer (``store: true``) until the ledger is pruned."""

    async def stored_response(self, response_id: str) -> StoredResponse | None:
        """The stored response with this id, whichever unit's (the caller checks)."""

    async def reviews(
        self, status: str | None = None, unit: str | None = None, limit: int = 100
    ) -> list[Review]: ...
