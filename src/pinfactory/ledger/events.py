"""The ledger's projections of an outcome: its ``requests`` row and its audit events.

Both are read off the typed outcome (``pinfactory.outcome``), so the row and
the chain cannot disagree: the row's cost and tokens are the sums of the
outcome's member calls, as are the ``response`` (or ``error``) entry's. The
ledger adds the row's own figures to that closing entry (under ``row``) when it
seals it, in the same commit (``ledger.record.prepare``); ``audit verify`` checks
every row against them.

A request's chain segment: ``request`` -> ``decision`` -> one ``call`` per
member call -> ``verdict`` / ``disagreement`` / ``inconsistency`` /
``escalation`` / ``self_consistency``... -> ``response`` (or ``error``, with
the row's sealed figures). The ``response`` / ``error`` entry names the
request's trace (``trace_id``) when the team traces: the id is issued before
the row is written, so the chain is where the console finds it.
"""

from __future__ import annotations

from typing import Any

from pinfactory.errors import PinfactoryError
from pinfactory.ledger.base import AuditEvent, LedgerEntry
from pinfactory.ledger.chain import digest
from pinfactory.outcome import Answer, Failure, Outcome, verdict_json
from pinfactory.request import Request


def entry_of(outcome: Outcome) -> LedgerEntry:
    """The ``requests`` row of an outcome: cost and tokens are its calls' sums."""
    usage = outcome.usage
    if isinstance(outcome, Answer):
        request, decision = outcome.request, outcome.decision
        return LedgerEntry(
            request_id=request.request_id,
            unit=request.unit,
            user=request.user,
            model=request.model,
            member=decision.member if outcome.calls else None,
            router=decision.router,
            reason=decision.reason,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=outcome.cost_usd,
            latency_ms=outcome.latency_ms,
            status=200,
            stream=request.stream,
            tags=request.tags,
            correlation_id=outcome.correlation_id,
        )
    error = outcome.error
    asked = outcome.request
    return LedgerEntry(
        request_id=outcome.request_id,
        unit=outcome.unit,
        user=outcome.user,
        model=outcome.model,
        member=outcome.member,
        router=outcome.decision.router if outcome.decision else None,
        reason=outcome.decision.reason if outcome.decision else None,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=outcome.cost_usd,
        latency_ms=outcome.latency_ms,
        status=error.status,
        error=f"{error.code}: {error.message}",
        stream=asked.stream if asked else False,
        tags=asked.tags if asked else (),
        correlation_id=outcome.correlation_id,
    )


def request_event(request: Request) -> AuditEvent:
    """Who asked what (the prompt as a digest: the chain holds decisions, not content)."""
    payload: dict[str, Any] = {
        "unit": request.unit,
        "user": request.user,
        "model": request.model,
        "tags": list(request.tags),
        "stream": request.stream,
        "prompt_tokens": request.prompt_tokens,
        "prompt": digest(request.text),
    }
    if request.correlation_id is not None:
        payload["correlation_id"] = request.correlation_id
    return AuditEvent("request", request.request_id, payload)


def events_of(outcome: Outcome) -> list[AuditEvent]:
    """The request's chain segment, ending with its sealed figures."""
    if isinstance(outcome, Failure):
        return failure_events(outcome)
    answer = outcome
    rid = answer.request.request_id
    events = [request_event(answer.request), AuditEvent("decision", rid, answer.decision.to_json())]
    events += [AuditEvent("call", rid, c.to_json()) for c in answer.calls]
    if answer.cache is not None:
        events.append(AuditEvent("cache", rid, answer.cache.to_json()))
    if answer.verdict is not None:
        events.append(AuditEvent("verdict", rid, verdict_json(answer.verdict)))
    for event in answer.events:
        events.append(AuditEvent(event.kind, rid, event.to_json()))
    if answer.sampling is not None:
        events.append(AuditEvent("self_consistency", rid, answer.sampling.to_json()))
    if answer.injection:
        flagged = [
            {"n": i.n, "title": i.title, "instruction": i.instruction} for i in answer.injection
        ]
        events.append(AuditEvent("injection", rid, {"passages": flagged}))
    if answer.redacted:
        events.append(AuditEvent("redacted", rid, {"kinds": list(answer.redacted)}))
    if answer.escalation is not None:
        escalation = answer.escalation.to_json()
        if answer.escalation.answer:  # the withheld answer: named, not stored
            escalation["answer"] = digest(answer.escalation.answer)
        events.append(AuditEvent("escalation", rid, escalation))
    if answer.review is not None:
        events.append(AuditEvent("review", rid, answer.review.to_json()))
    usage = answer.usage
    response: dict[str, Any] = {
        "status": 200,
        "member": answer.decision.member,
        "cost_usd": format(answer.cost_usd, "f"),  # as the chain writes a Decimal, at once
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "latency_ms": round(answer.latency_ms, 3),
        "answer": digest(answer.completion.text),
    }
    if answer.trace_id is not None:
        response["trace_id"] = answer.trace_id
    events.append(AuditEvent("response", rid, response))
    return events


def failure_events(failure: Failure) -> list[AuditEvent]:
    rid = failure.request_id
    events = [request_event(failure.request)] if failure.request is not None else []
    if failure.decision is not None:
        events.append(AuditEvent("decision", rid, failure.decision.to_json()))
    events += [AuditEvent("call", rid, c.to_json()) for c in failure.calls]
    error: PinfactoryError = failure.error
    usage = failure.usage
    payload: dict[str, Any] = {
        "status": error.status,
        "code": error.code,
        "message": error.message,
        "member": failure.member,
        "cost_usd": format(failure.cost_usd, "f"),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
    }
    if failure.trace_id is not None:
        payload["trace_id"] = failure.trace_id
    events.append(AuditEvent("error", rid, payload))
    return events
