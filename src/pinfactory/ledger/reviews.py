"""The human review queue: escalated answers wait here for a person.

The pipeline hands every answer to :meth:`ReviewQueue.hold`; one that
carries an escalation of kind ``review`` (``Answer.escalation``,
set by the verifiers) is queued with its reason and evidence. Per the team's
``reviews`` policy the client then waits for the decision (up to
``timeout_s``) or gets the review id at once to poll ``GET /v1/reviews/{id}``.
Reviewers approve or override through the admin API or ``pinfactory
review``; each action is sealed into the audit chain in the same commit as
the decision. Decided reviews export as labelled JSONL for the lab.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from typing import Any, TextIO

from pinfactory.errors import NotFound, RequestError
from pinfactory.ledger.base import AuditEvent, Ledger, Review, ReviewStatus
from pinfactory.ledger.chain import digest, jsonable
from pinfactory.outcome import Answer, ReviewNotice, finding_json, verdict_json
from pinfactory.team import ReviewSpec

POLL_S = 0.2


def new_review_id() -> str:
    return "rev_" + uuid.uuid4().hex[:20]


class ReviewQueue:
    def __init__(self, ledger: Ledger, policy: ReviewSpec | None = None) -> None:
        self.ledger = ledger
        self.policy = policy or ReviewSpec()

    async def submit(
        self,
        *,
        request_id: str,
        unit: str,
        user: str,
        prompt: str,
        member: str,
        answer: str,
        reason: str,
        evidence: Any = None,
        verdict: Any = None,
        held: Any = None,
    ) -> Review:
        """Queue an answer (or, with ``held``, a request not yet run) for a person; audited."""
        review = Review(
            id=new_review_id(),
            request_id=request_id,
            unit=unit,
            user=user,
            created=time.time(),
            reason=reason,
            evidence=jsonable(evidence),
            prompt=prompt,
            member=member,
            answer=answer,
            verdict=jsonable(verdict),
            held=held,
        )
        event = AuditEvent(
            "review.queued",
            request_id,
            {"review_id": review.id, "reason": reason, "member": member, "answer": digest(answer)},
        )
        await self.ledger.add_review(review, [event])
        return review

    async def hold(self, answer: Answer) -> Answer:
        """The pipeline hook: queue a review-escalated answer; wait or return pending.

        The verify stage replaces the client's text with a notice and keeps the
        member's own answer in the escalation's ``answer``: that is what the
        reviewer judges and what an approval releases. It never reaches the
        client until a reviewer releases it.
        """
        escalation = answer.escalation
        if escalation is None or escalation.kind != "review":
            return answer
        request = answer.request
        review = await self.submit(
            request_id=request.request_id,
            unit=request.unit,
            user=request.user,
            prompt=request.text,
            member=answer.decision.member,
            answer=escalation.answer or answer.completion.text,
            reason=escalation.reason or "escalated for review",
            evidence=[finding_json(f) for f in escalation.evidence],
            verdict=verdict_json(answer.verdict) if answer.verdict is not None else None,
        )
        if self.policy.mode == "wait" and self.policy.timeout_s > 0:
            review = await self.wait(review.id, self.policy.timeout_s)
        return released(answer, review)

    async def wait(self, review_id: str, timeout_s: float) -> Review:
        """The review once decided, or as it stands when ``timeout_s`` runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            review = await self.get(review_id)
            if review.status != "pending" or time.monotonic() >= deadline:
                return review
            await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    async def get(self, review_id: str, unit: str | None = None) -> Review:
        """One review; another unit's review is reported as not found."""
        review = await self.ledger.review(review_id)
        if review is None or (unit is not None and review.unit != unit):
            raise NotFound(f"no review '{review_id}'", param="review_id")
        return review

    async def approve(
        self, review_id: str, reviewer: str, note: str | None = None, answer: str | None = None
    ) -> Review:
        """Release the member's answer; ``answer`` is a held request's, once it has run."""
        return await self._decide(review_id, "approved", reviewer, None, note, answer)

    async def override(
        self, review_id: str, reviewer: str, answer: str, note: str | None = None
    ) -> Review:
        if not answer.strip():
            raise RequestError("an override needs the replacement 'answer'", param="answer")
        return await self._decide(review_id, "overridden", reviewer, answer, note)

    async def _decide(
        self,
        review_id: str,
        status: ReviewStatus,
        reviewer: str,
        final_answer: str | None,
        note: str | None,
        answer: str | None = None,
    ) -> Review:
        if not reviewer.strip():
            raise RequestError("a decision needs the 'reviewer' who made it", param="reviewer")
        current = await self.get(review_id)
        if status == "approved" and current.held is not None and answer is None:
            raise RequestError(
                f"review '{review_id}' holds a request that has not run yet: approve it through "
                "the gateway (POST /admin/reviews/{id}) or `pinfactory review approve`, which run "
                "it on its member",
                param="review_id",
            )
        event = AuditEvent(
            f"review.{status}",
            current.request_id,
            {
                "review_id": review_id,
                "reviewer": reviewer,
                "member": current.member,
                "answer": final_answer,
                "note": note,
            },
        )
        decided = await self.ledger.decide_review(
            review_id, status, reviewer, final_answer, note, [event], answer
        )
        return replace(
            decided,
            answer=decided.answer if answer is None else answer,
            status=status,
            reviewer=reviewer,
            final_answer=final_answer,
            note=note,
            decided=event.time,
        )

    async def export(self, out: TextIO, limit: int = 1_000_000) -> int:
        """Write decided reviews as labelled JSONL; return how many."""
        count = 0
        for status in ("approved", "overridden"):
            for review in await self.ledger.reviews(status=status, limit=limit):
                out.write(json.dumps(labelled(review), ensure_ascii=False) + "\n")
                count += 1
        return count


def released(answer: Answer, review: Review) -> Answer:
    """The answer as the client may see it given the review's state."""
    if review.status == "pending":
        poll = f"/v1/reviews/{review.id}"
        if review.held is not None:
            what = "request is waiting for a person's approval to spend"
        else:
            what = "answer is waiting for human review"
        notice = ReviewNotice(review.id, review.status, review.reason, poll=poll)
        text = f"This {what} (review {review.id}): poll {poll}."
    else:
        notice = ReviewNotice(review.id, review.status, review.reason, reviewer=review.reviewer)
        text = review.released_answer or ""
    return replace(answer, completion=replace(answer.completion, text=text), review=notice)


def labelled(review: Review) -> dict[str, Any]:
    """A decided review as one labelled example for the lab and the routers."""
    return {
        "review_id": review.id,
        "request_id": review.request_id,
        "unit": review.unit,
        "prompt": review.prompt,
        "member": review.member,
        "answer": review.answer,
        "verdict": review.verdict,
        "reason": review.reason,
        "decision": review.status,
        "label": "accepted" if review.status == "approved" else "rejected",
        "final_answer": review.released_answer,
        "reviewer": review.reviewer,
    }


def public(review: Review) -> dict[str, Any]:
    """What the unit that asked may see of its review."""
    return {
        "id": review.id,
        "object": "pinfactory.review",
        "request_id": review.request_id,
        "status": review.status,
        "reason": review.reason,
        "answer": review.released_answer,
        "decided": review.decided,
    }


def full(review: Review) -> dict[str, Any]:
    """Everything a reviewer sees."""
    return {**jsonable(review), "object": "pinfactory.review"}
