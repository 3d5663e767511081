"""Labelled outcomes: what people and verifiers said about answers, read from the ledger.

Three sources label an answered request, each sealed in the audit chain with the
request's id, so one ordered stream (the chain's ``seq``) holds them all:

===========  ============================  =========================================
source       chain entry                   quality in [0, 1]
===========  ============================  =========================================
``user``     ``feedback`` (/v1/feedback)   the score; thumbs up 1, down 0
``verifier`` ``verdict``                   the verdict's confidence
``reviewer`` ``review.approved`` /         1 when a person approved the answer,
             ``review.overridden``         0 when they replaced it
===========  ============================  =========================================

:func:`labelled_outcomes` pages through them after a chain position (the online router
reads it to learn, :mod:`pinfactory.routing.online`); :func:`outcome_table` joins each
label with its request's row (member, cost, unit) and decision (router, propensity),
one :class:`OutcomeRow` per label, which :func:`write_table` writes as the lab's
decision log (CSV or JSONL; ``pinfactory feedback export``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from pinfactory.errors import DatasetError
from pinfactory.ledger.base import AuditEvent, AuditRecord, Feedback, Ledger

Source = Literal["user", "verifier", "reviewer"]
LABEL_KINDS = ("feedback", "verdict", "review.approved", "review.overridden")
"""The chain entries that label an answer."""


def feedback_event(feedback: Feedback) -> AuditEvent:
    """The chain entry sealing one feedback row (the comment is kept: the caller wrote it
    about their own request)."""
    payload: dict[str, Any] = {
        "feedback_id": feedback.id,
        "unit": feedback.unit,
        "user": feedback.user,
        "score": feedback.score,
        "thumbs": feedback.thumbs,
        "comment": feedback.comment,
    }
    return AuditEvent("feedback", feedback.request_id, payload, feedback.time)


@dataclass(frozen=True, slots=True)
class LabelledOutcome:
    """One label of one request: where it came from, and the answer's quality."""

    seq: int
    request_id: str
    source: Source
    quality: float
    label: str
    """``up``/``down``/``score`` (user), the verdict's label, ``approved``/``overridden``."""
    comment: str | None
    time: float


def label_of(record: AuditRecord) -> LabelledOutcome | None:
    """The label a chain entry carries, or None for any other entry."""
    if record.kind not in LABEL_KINDS:
        return None
    body = json.loads(record.body)
    payload, when = body.get("payload") or {}, float(body.get("time") or 0.0)
    rid, seq = record.request_id, record.seq
    if record.kind == "feedback":
        thumbs = payload.get("thumbs")
        return LabelledOutcome(
            seq, rid, "user", float(payload["score"]), thumbs or "score",
            payload.get("comment"), when,
        )  # fmt: skip
    if record.kind == "verdict":
        return LabelledOutcome(
            seq, rid, "verifier", float(payload["confidence"]), str(payload["label"]),
            payload.get("verifier"), when,
        )  # fmt: skip
    approved = record.kind == "review.approved"
    status = "approved" if approved else "overridden"
    return LabelledOutcome(
        seq, rid, "reviewer", 1.0 if approved else 0.0, status, payload.get("note"), when
    )


async def labelled_outcomes(
    ledger: Ledger, after: int = 0, page: int = 1000
) -> AsyncIterator[LabelledOutcome]:
    """Every label sealed after chain entry ``after``, in chain order."""
    while True:
        records = await ledger.audit_kinds(LABEL_KINDS, after, page)
        for record in records:
            label = label_of(record)
            if label is not None:
                yield label
        if len(records) < page:
            return
        after = records[-1].seq


def decision_of(records: Sequence[AuditRecord]) -> dict[str, Any] | None:
    """The ``decision`` entry's payload among one request's chain entries."""
    for record in records:
        if record.kind == "decision":
            payload = json.loads(record.body).get("payload")
            return payload if isinstance(payload, dict) else None
    return None


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One row of the exported table: a label joined with its request.

    ``quality``, ``member``, ``cost_usd`` and ``propensity`` are what the lab's decision
    log (``pinfactory router evaluate-offline --log``) reads; ``propensity`` is 1 for a
    router that does not explore (every choice it made was certain). ``prompt`` is empty:
    the ledger keeps prompts only as digests (``prompt_digest``), so a caller joins its own
    prompt log on ``request_id`` or the digest before replaying candidates.
    """

    request_id: str
    time: float
    unit: str
    user: str
    member: str
    router: str
    source: Source
    quality: float
    label: str
    comment: str
    cost_usd: float
    propensity: float
    prompt_digest: str
    prompt: str = ""


COLUMNS = tuple(f.name for f in fields(OutcomeRow))


async def outcome_table(
    ledger: Ledger, sources: Sequence[Source] = ("user", "verifier", "reviewer")
) -> list[OutcomeRow]:
    """Every label of an answered request, joined with its row and decision, oldest first.

    Labels of requests with no answering member (refused, failed) are left out.
    """
    rows: list[OutcomeRow] = []
    async for label in labelled_outcomes(ledger):
        if label.source not in sources:
            continue
        entry = await ledger.entry(label.request_id)
        if entry is None or entry.member is None:
            continue
        chain = await ledger.audit(label.request_id)
        decision = decision_of(chain) or {}
        asked = next((r for r in chain if r.kind == "request"), None)
        digest = json.loads(asked.body)["payload"].get("prompt", "") if asked else ""
        rows.append(
            OutcomeRow(
                request_id=label.request_id,
                time=label.time,
                unit=entry.unit,
                user=entry.user,
                member=entry.member,
                router=entry.router or "",
                source=label.source,
                quality=label.quality,
                label=label.label,
                comment=label.comment or "",
                cost_usd=float(entry.cost_usd),
                propensity=float(decision.get("propensity") or 1.0),
                prompt_digest=str(digest),
            )
        )
    return rows


def write_table(rows: Sequence[OutcomeRow], path: Path) -> None:
    """Write ``rows`` as CSV (``.csv``) or JSON lines (``.jsonl``), columns :data:`COLUMNS`."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows)
    elif suffix in (".jsonl", ".ndjson"):
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
    else:
        raise DatasetError(f"{path}: unknown format '{suffix}'; allowed: .csv, .jsonl")
