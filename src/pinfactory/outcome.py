"""What one request produced, as one typed value: :class:`Answer` or :class:`Failure`.

Every record of a request is a projection of its outcome, never a second
source of truth:

====================  ==========================================================
the ledger row        ``ledger.events.entry_of`` (cost and tokens: the calls' sums)
the audit chain       ``ledger.events.events_of`` (the same figures, sealed)
metrics               ``observe.metrics.Metrics.answered`` / ``failed``
the trace             ``observe.tracing.Tracing.answered`` / ``failed``
the response block    :meth:`Answer.metadata` (the ``pinfactory`` object)
====================  ==========================================================

An answer carries the routing :class:`~pinfactory.routing.base.Decision`,
the final :class:`~pinfactory.members.base.Completion`, every
:class:`~pinfactory.members.calls.MemberCall` made on the request's behalf
(what the request costs is their sum), the verifiers' :class:`Verdict`, the
:class:`Escalation` if any, the :data:`Event` s they raised
(:class:`Disagreement` | :class:`Inconsistency`, a tagged union), and what the
verify stage added (sampling, sources, injection flags, redactions), each
typed. This module sits below the pipeline, the ledger, the observers and
the gateway, and imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pinfactory.errors import MemberError, PinfactoryError
from pinfactory.members.base import Completion, Usage
from pinfactory.members.calls import MemberCall, Purpose, total_usage
from pinfactory.request import Request
from pinfactory.routing.base import Decision
from pinfactory.verify.base import Finding, Verdict
from pinfactory.verify.events import Disagreement, Event, Inconsistency


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "message": finding.message,
        "claim": finding.claim,
        "passage": finding.passage,
        "score": finding.score,
    }


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """A verdict as the response and the chain show it (confidence in [0, 1])."""
    return {
        "label": verdict.label,
        "verifier": verdict.verifier,
        "confidence": round(verdict.confidence, 4),
        "findings": [finding_json(f) for f in verdict.findings],
    }


@dataclass(frozen=True, slots=True)
class Escalation:
    """An answer that could not be trusted as it was.

    ``kind`` is ``tier`` (asked a stronger member: ``target`` names it),
    ``review`` (held for the human review queue: ``target`` is ``review``, the
    withheld answer is in ``answer``) or ``caveat`` (answered with a warning).
    ``evidence`` holds the findings that caused it. The withheld ``answer``
    never leaves the process: :meth:`to_json` leaves it out.
    """

    kind: Literal["tier", "review", "caveat"]
    reason: str
    target: str
    confidence: float
    evidence: tuple[Finding, ...] = field(default_factory=tuple)
    answer: str = ""
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind,
            "reason": self.reason,
            "target": self.target,
            "confidence": round(self.confidence, 4),
            "evidence": [finding_json(f) for f in self.evidence],
        }
        if self.source:
            body["source"] = self.source
        return body


@dataclass(frozen=True, slots=True)
class Sampling:
    """Self-consistency: how many samples, at what temperature, and how far they agreed."""

    samples: int
    temperature: float
    agreement: float

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "temperature": self.temperature,
            "agreement": round(self.agreement, 4),
        }


@dataclass(frozen=True, slots=True)
class Source:
    """A passage a retrieval answer cites, numbered as the answer cites it."""

    n: int
    title: str


@dataclass(frozen=True, slots=True)
class Injection:
    """A cited passage that carried an instruction (quoted, not obeyed)."""

    n: int
    title: str
    instruction: str


@dataclass(frozen=True, slots=True)
class ReviewNotice:
    """Where an answer held for a person stands, as the client sees it."""

    id: str
    status: str
    reason: str
    poll: str | None = None
    reviewer: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "status": self.status, "reason": self.reason}
        if self.poll is not None:
            body["poll"] = self.poll
        if self.status != "pending":
            body["reviewer"] = self.reviewer
        return body


@dataclass(frozen=True, slots=True)
class CacheHit:
    """An answer served from the response cache (``pinfactory.cache``) instead of a call.

    ``source`` is the request whose answer was reused, ``similarity`` 1 for an exact hit,
    ``saved_usd`` what that answer cost (the call this one did not make).
    """

    kind: Literal["exact", "semantic"]
    source: str
    similarity: float
    saved_usd: Decimal
    age_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "similarity": self.similarity,
            "saved_usd": format(self.saved_usd, "f"),
            "age_s": self.age_s,
        }


class Booked:
    """What an outcome cost, read off its member calls: both outcomes are ``Booked``."""

    __slots__ = ()
    calls: tuple[MemberCall, ...]

    @property
    def cost_usd(self) -> Decimal:
        """What the request cost: every member call made for it, in USD."""
        calls = self.calls
        if len(calls) == 1:  # most requests: read several times per request, so kept cheap
            return calls[0].cost_usd
        return sum((c.cost_usd for c in calls), Decimal(0))

    @property
    def usage(self) -> Usage:
        """Tokens of every member call made for the request."""
        calls = self.calls
        return calls[0].usage if len(calls) == 1 else total_usage(calls)


@dataclass(slots=True)
class Answer(Booked):
    """A request that was answered (HTTP 200), and everything that happened on the way.

    ``calls`` holds every member call made for the request (``()``: none, as
    for a request held before any member ran); when a caller builds an answer
    without giving them (a bench, a test), the completion is taken as the one
    call. ``cost_usd`` and ``usage`` are the calls' sums: what the
    ledger books. ``completion.usage`` is the final answer's own usage, what
    the OpenAI ``usage`` field reports.
    """

    request: Request
    decision: Decision
    completion: Completion
    latency_ms: float
    calls: tuple[MemberCall, ...] = None  # type: ignore[assignment]  # None: see __post_init__
    verdict: Verdict | None = None
    escalation: Escalation | None = None
    events: tuple[Event, ...] = ()
    sampling: Sampling | None = None
    sources: tuple[Source, ...] = ()
    injection: tuple[Injection, ...] = ()
    redacted: tuple[str, ...] = ()
    review: ReviewNotice | None = None
    trace_id: str | None = None
    correlation_id: str | None = None
    cache: CacheHit | None = None

    def __post_init__(self) -> None:
        if self.calls is None:
            c = self.completion
            self.calls = (
                MemberCall(
                    self.decision.member, "answer", c.usage, c.cost_usd, self.latency_ms, c.model
                ),
            )

    @property
    def status(self) -> int:
        return 200

    def metadata(self) -> dict[str, Any]:
        """The ``pinfactory`` block of the response (a withheld answer is never in it)."""
        decision = self.decision
        usage = self.usage
        block: dict[str, Any] = {
            "member": decision.member,
            "reason": decision.reason,
            "router": decision.router,
            "rule": decision.rule,
            "fallback": decision.fallback,
            "confidence": decision.confidence,
            "cost_usd": float(self.cost_usd),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "latency_ms": round(self.latency_ms, 3),
            "request_id": self.request.request_id,
            "unit": self.request.unit,
            "refused": self.completion.refused,
        }
        if len(self.calls) > 1:
            block["calls"] = [c.to_json() for c in self.calls]
        if self.correlation_id is not None:
            block["correlation_id"] = self.correlation_id
        if self.events:
            block["events"] = [e.to_json() for e in self.events]
        if self.verdict is not None:
            block["verdict"] = verdict_json(self.verdict)
            block["verification_confidence"] = round(self.verdict.confidence, 4)
        if self.escalation is not None:
            block["escalation"] = self.escalation.to_json()
        if self.sampling is not None:
            block["self_consistency"] = self.sampling.to_json()
        if self.redacted:
            block["redacted"] = list(self.redacted)
        if self.sources:
            block["sources"] = [{"n": s.n, "title": s.title} for s in self.sources]
        if self.injection:
            block["injection"] = [
                {"n": i.n, "title": i.title, "instruction": i.instruction} for i in self.injection
            ]
        if self.review is not None:
            block["review"] = self.review.to_json()
        if self.trace_id is not None:
            block["trace_id"] = self.trace_id
        if self.cache is not None:
            block["cache"] = self.cache.to_json()
        return block


@dataclass(slots=True)
class Failure(Booked):
    """A request that failed anywhere, even one that never parsed (``request`` is None).

    ``calls`` are the member calls made before it failed (a broken stream's
    counted tokens, a verifier's second opinion...): what it cost is their sum.
    """

    request: Request | None
    error: PinfactoryError
    unit: str
    user: str
    model: str
    request_id: str
    latency_ms: float = 0.0
    calls: tuple[MemberCall, ...] = ()
    decision: Decision | None = None
    correlation_id: str | None = None
    trace_id: str | None = None

    @property
    def member(self) -> str | None:
        if isinstance(self.error, MemberError):
            return self.error.member
        return self.decision.member if self.decision is not None else None

    @property
    def status(self) -> int:
        return self.error.status


Outcome = Answer | Failure
"""How a request ended: exactly one of these is recorded per request."""


__all__ = [
    "Answer",
    "Booked",
    "CacheHit",
    "Disagreement",
    "Escalation",
    "Event",
    "Failure",
    "Inconsistency",
    "Injection",
    "MemberCall",
    "Outcome",
    "Purpose",
    "ReviewNotice",
    "Sampling",
    "Source",
    "finding_json",
    "total_usage",
    "verdict_json",
]
