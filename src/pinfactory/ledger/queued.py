"""Requests held by a ``queue`` policy: filed for review now, run when a person approves.

When a spend limit (``pinfactory.spend``: ``limits``, a quota or a unit
budget) with ``on_exhausted: queue`` is exhausted, the pipeline does not
answer: it hands the :class:`~pinfactory.spend.QuotaQueued` to :func:`queue_request`,
which files a review ("... exhausted for unit ...: awaiting approval to
spend") holding everything needed to run the request later (the messages,
model, member and the counter to book), and gives the client what any held
answer gets (poll: the pending review; wait: the decision, or pending at the
timeout).

A reviewer then decides:

- **approve** means "spend it": :func:`run_approved` runs the request on the
  member it was routed to, past the limit, books the spend anyway
  (:meth:`Spend.charge`: every limit covering the call counts it and its
  actual cost), records the call in the ledger and releases the member's answer.
  This needs the team's members, so it runs where a pipeline is open: the
  gateway's admin API (``POST /admin/reviews/{id}``), or ``pinfactory review
  approve``, which opens the team's pipeline for the one call. A member that
  fails leaves the review pending (the failure is recorded) to be retried or
  overridden.
- **override** releases the reviewer's own answer; no member is called.

Every step is audited: ``escalation`` and ``review.queued`` when held,
``call`` and ``review.executed`` (member, tokens, cost) when run,
``review.approved`` or ``review.overridden`` naming the reviewer and member.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Protocol

from pinfactory.errors import Conflict
from pinfactory.ledger.base import AuditEvent, Ledger, Review, to_nano
from pinfactory.ledger.chain import jsonable
from pinfactory.ledger.events import entry_of, events_of
from pinfactory.ledger.reviews import ReviewQueue, released
from pinfactory.members.base import Completion, Member, Usage
from pinfactory.outcome import Answer, Escalation
from pinfactory.request import Document, Message, Request, text_of, wire_message
from pinfactory.routing.base import Decision
from pinfactory.spend import QuotaQueued, Spend


class Pipeline(Protocol):
    """What holding and running a request needs of the pipeline (it is one)."""

    members: dict[str, Member]
    ledger: Ledger
    reviews: ReviewQueue
    spend: Spend

    async def record(self, answer: Answer) -> None: ...

    async def run_held(self, member: Member, request: Request, started: float) -> Completion: ...


_RUNNING: set[str] = set()  # reviews being run in this process: one approval runs once


def held_request(request: Request, queued: QuotaQueued) -> dict[str, Any]:
    """What a review row keeps to run the request later, as JSON."""
    return {
        "source": queued.source,
        "counter": {"key": queued.key, "period": queued.period, "nusd": queued.nusd},
        "member": queued.decision.member,
        "model": request.model,
        "messages": [jsonable(wire_message(m)) for m in request.messages],
        "params": jsonable(dict(request.params)),
        "documents": [{"text": d.text, "title": d.title} for d in request.documents],
        "tools": jsonable(list(request.tools)),
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "tags": list(request.tags),
    }


def rebuild(review: Review) -> Request:
    """The held request as it was sent, under its original id, unit and user."""
    held = review.held
    return Request(
        messages=tuple(Message(m["role"], text_of(m.get("content")), m) for m in held["messages"]),
        params=held.get("params", {}),
        model=held["model"],
        temperature=held["temperature"],
        max_tokens=held["max_tokens"],
        stop=tuple(held["stop"]),
        documents=tuple(Document(d["text"], d["title"]) for d in held["documents"]),
        tools=tuple(held["tools"]),
        unit=review.unit,
        user=review.user,
        tags=tuple(held["tags"]),
        request_id=review.request_id,
    )


async def queue_request(
    pipeline: Pipeline, request: Request, queued: QuotaQueued, started: float
) -> Answer:
    """File the request with the review queue, record it (no member was called: no
    calls, no cost); the client's pending or decided answer."""
    decision = queued.decision
    reason = f"{queued.escalation}: awaiting approval to spend"
    review = await pipeline.reviews.submit(
        request_id=request.request_id,
        unit=request.unit,
        user=request.user,
        prompt=request.text,
        member=decision.member,
        answer="",  # none yet: the member runs only if a reviewer approves
        reason=reason,
        evidence={"source": queued.source, "limit": queued.message, "route": decision.reason},
        held=held_request(request, queued),
    )
    policy = pipeline.reviews.policy
    if policy.mode == "wait" and policy.timeout_s > 0:
        review = await pipeline.reviews.wait(review.id, policy.timeout_s)
    nothing = Completion(text="", usage=Usage(), cost_usd=Decimal(0), model=decision.member)
    answer = Answer(
        request,
        decision,
        nothing,
        (time.perf_counter() - started) * 1000.0,
        calls=(),
        escalation=Escalation("review", reason, "review", 0.0, source=queued.source),
        correlation_id=request.correlation_id,
    )
    answer = released(answer, review)
    await pipeline.record(answer)
    return answer


async def run_approved(
    pipeline: Pipeline, review_id: str, reviewer: str, note: str | None = None
) -> Review:
    """Approve a review; a held request first runs on its member, past its limit."""
    review = await pipeline.reviews.get(review_id)
    if review.held is None:
        return await pipeline.reviews.approve(review_id, reviewer, note)
    if review.status != "pending":
        raise Conflict(
            f"review '{review_id}' was already decided ({review.status} by "
            f"{review.reviewer or 'unknown'})",
            param="review_id",
        )
    if review_id in _RUNNING:
        raise Conflict(f"review '{review_id}' is being approved already", param="review_id")
    member = pipeline.members.get(review.held["member"])
    if member is None:
        raise Conflict(
            f"review '{review_id}' was routed to member '{review.held['member']}', which the "
            "team no longer has: override it instead",
            param="review_id",
        )
    _RUNNING.add(review_id)
    try:
        request = rebuild(review)
        started = time.perf_counter()
        completion = await pipeline.run_held(member, request, started)
        await pipeline.spend.charge(request, review.member, to_nano(completion.cost_usd))
        await _record(pipeline, review, request, completion, reviewer, started)
        return await pipeline.reviews.approve(review_id, reviewer, note, answer=completion.text)
    finally:
        _RUNNING.discard(review_id)


async def _record(
    pipeline: Pipeline,
    review: Review,
    request: Request,
    completion: Completion,
    reviewer: str,
    started: float,
) -> None:
    """The approved run's own ledger row: its call, and the reviewer who allowed it."""
    decision = Decision(
        member=review.member,
        reason=f"run on approval by reviewer {reviewer}: {review.reason}",
        router="review",
    )
    answer = Answer(request, decision, completion, (time.perf_counter() - started) * 1000.0)
    executed = AuditEvent(
        "review.executed",
        review.request_id,
        {**answer.calls[0].to_json(), "review_id": review.id, "reviewer": reviewer},
    )
    events = events_of(answer)
    await pipeline.ledger.record(entry_of(answer), [*events[:-1], executed, events[-1]])
