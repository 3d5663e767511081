"""Who answered, and who failed: a request's audit entries read as a story.

:func:`explain` names the component whose output was final (a member, or a
reviewer who overrode it) and every component that failed along the way:
a router that fell back, a verifier that flagged the answer, an escalation,
a member error, a reviewer override.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pinfactory.ledger.base import AuditRecord
from pinfactory.ledger.chain import payload

FLAGGED_LABELS = ("partly_supported", "unsupported", "contradicted")
LOW_CONFIDENCE = 0.5


@dataclass(slots=True)
class Explanation:
    request_id: str
    final: str | None = None
    failures: list[str] = field(default_factory=list)
    steps: list[tuple[AuditRecord, dict[str, Any]]] = field(default_factory=list)


def explain(request_id: str, records: Sequence[AuditRecord]) -> Explanation:
    """Read one request's entries (in chain order) for responsibility."""
    story = Explanation(request_id)
    rank = -1
    for record in records:
        data = payload(record)
        story.steps.append((record, data))
        note = _failure(record.kind, data)
        if note:
            story.failures.append(note)
        final = _final(record.kind, data)
        if final and _rank(record.kind) >= rank:
            story.final, rank = final, _rank(record.kind)
    return story


def _rank(kind: str) -> int:
    """A reviewer's decision outranks the member's response, whatever the chain order."""
    return {"response": 0, "review.approved": 1, "review.overridden": 2}.get(kind, -1)


def _final(kind: str, data: dict[str, Any]) -> str | None:
    if kind == "response":
        return f"member {data.get('member')}"
    if kind == "review.approved":
        return f"member {data.get('member')} (approved by reviewer {data.get('reviewer')})"
    if kind == "review.overridden":
        return f"reviewer {data.get('reviewer')} (override)"
    return None


def _failure(kind: str, data: dict[str, Any]) -> str | None:
    if kind == "decision" and data.get("fallback"):
        return f"router {data.get('router')}: no route matched, fell back to {data.get('member')}"
    if kind == "verdict":
        label, confidence = data.get("label"), data.get("confidence")
        low = isinstance(confidence, int | float) and confidence < LOW_CONFIDENCE
        if label in FLAGGED_LABELS or low:
            return (
                f"verifier {data.get('verifier', '?')} flagged the answer "
                f"({label}, confidence {confidence})"
            )
    if kind == "escalation":
        target = data.get("kind") or data.get("to") or "?"
        return f"escalated to {target}: {data.get('reason', 'no reason given')}"
    if kind == "error":
        who = f"member {data['member']}" if data.get("member") else "the request"
        return f"{who} failed ({data.get('status')} {data.get('code')}): {data.get('message')}"
    if kind == "review.overridden":
        return f"member {data.get('member')}: answer overridden by reviewer {data.get('reviewer')}"
    return None
