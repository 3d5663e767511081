"""The audit events of one request, read off what the pipeline produced.

Stages added later (guards, cascades, verifiers, escalations) put their
results in ``Answer.extra``; every entry there becomes an event of that
kind, so the chain records them without this module knowing each stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pinfactory.errors import MemberError, PinfactoryError
from pinfactory.ledger.base import AuditEvent
from pinfactory.ledger.chain import digest, jsonable
from pinfactory.request import Request

if TYPE_CHECKING:
    from pinfactory.pipeline import Answer


def request_event(request: Request) -> AuditEvent:
    """Who asked what (the prompt as a digest: the chain holds decisions, not content)."""
    return AuditEvent(
        "request",
        request.request_id,
        {
            "unit": request.unit,
            "user": request.user,
            "model": request.model,
            "tags": list(request.tags),
            "stream": request.stream,
            "prompt_tokens": request.prompt_tokens,
            "prompt": digest(request.text),
        },
    )


def answer_events(answer: Answer) -> list[AuditEvent]:
    """request -> decision -> call -> every ``extra`` stage -> response."""
    rid = answer.request.request_id
    completion = answer.completion
    events = [
        request_event(answer.request),
        AuditEvent("decision", rid, jsonable(answer.decision)),
        AuditEvent(
            "call",
            rid,
            {
                "member": answer.decision.member,
                "model": completion.model,
                "input_tokens": completion.usage.input_tokens,
                "output_tokens": completion.usage.output_tokens,
                "cost_usd": completion.cost_usd,
                "finish_reason": completion.finish_reason,
                "refused": completion.refused,
            },
        ),
    ]
    for kind, value in answer.extra.items():
        data: Any = jsonable(value)
        events.append(AuditEvent(kind, rid, data if isinstance(data, dict) else {"value": data}))
    events.append(
        AuditEvent(
            "response",
            rid,
            {
                "status": 200,
                "member": answer.decision.member,
                "cost_usd": answer.cost_usd,
                "latency_ms": round(answer.latency_ms, 3),
                "answer": digest(completion.text),
            },
        )
    )
    return events


def failure_events(
    request: Request | None, error: PinfactoryError, request_id: str
) -> list[AuditEvent]:
    events = [request_event(request)] if request is not None else []
    events.append(
        AuditEvent(
            "error",
            request_id,
            {
                "status": error.status,
                "code": error.code,
                "message": error.message,
                "member": error.member if isinstance(error, MemberError) else None,
            },
        )
    )
    return events
