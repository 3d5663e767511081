"""``pinfactory verify batch``: one JSONL line in, one verdict line out.

Input lines: ``{"id": str | int, "answer": str, "evidence": str | [str], "question"?: str}``.
Output lines: ``{"id", "label", "confidence", "findings": [{kind, message, claim, score}]}``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from pinfactory.verify.grounding import GroundingChecker
from pinfactory.verify.report import verdict_from


class BatchLine(BaseModel):
    """One input line, validated."""

    model_config = ConfigDict(extra="ignore")

    id: StrictStr | StrictInt
    answer: StrictStr
    evidence: StrictStr | list[StrictStr]
    question: StrictStr = ""


class BatchError(Exception):
    """A line that cannot be scored: ``message`` names the field and what is allowed."""

    def __init__(self, message: str, id: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.id = id


def parse_line(line: str, number: int) -> BatchLine:
    """Validate one JSONL line; raises :class:`BatchError` naming the line and field."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BatchError(f"line {number}: not JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise BatchError(f"line {number}: expected an object with id, answer, evidence")
    try:
        return BatchLine.model_validate(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"][:1]) or "line"
        allowed = {
            "id": "a string or an integer",
            "answer": "a string",
            "evidence": "a string or a list of strings",
            "question": "a string",
        }.get(field, "")
        raise BatchError(
            f"line {number}: field '{field}': {problem['msg'].lower()}"
            + (f" (allowed: {allowed})" if allowed else ""),
            raw.get("id"),
        ) from None


def score_line(checker: GroundingChecker, line: BatchLine) -> dict[str, Any]:
    """The output record of one input line."""
    evidence = [line.evidence] if isinstance(line.evidence, str) else line.evidence
    report = checker.assess(line.answer, evidence, question=line.question)
    verdict = verdict_from(report, checker.name)
    return {
        "id": line.id,
        "label": verdict.label,
        "confidence": verdict.confidence,
        "findings": [
            {"kind": f.kind, "message": f.message, "claim": f.claim, "score": f.score}
            for f in verdict.findings
        ],
    }
