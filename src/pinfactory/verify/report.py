"""What a grounding checker reports: per-claim checks, the answer's label and score.

Shared by the trained checker (:mod:`pinfactory.verify.grounding`) and the
word-coverage baseline (:mod:`pinfactory.verify.lexical`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pinfactory.request import Document
from pinfactory.verify.base import Finding, Label, Verdict
from pinfactory.verify.claims import split_sentences

ClaimLabel = Literal["supported", "unsupported", "contradicted", "unverified"]


@dataclass(frozen=True, slots=True)
class Passage:
    """One evidence sentence and where it came from."""

    text: str
    document: int
    title: str = ""


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """The verdict on one claim, with the passage that decided it and why."""

    text: str
    label: ClaimLabel
    score: float
    passage: str
    document: int
    reason: str
    coverage: float = 0.0
    similarity: float = 0.0
    order: float = 0.0
    missing: tuple[str, ...] = ()
    citations: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GroundingReport:
    """The checker's answer: a score in [0, 1], a label and every claim's check."""

    score: float
    label: Label
    claims: tuple[ClaimCheck, ...]
    features: dict[str, float] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: score, label, every claim's check, the skipped sentences, features."""
        return {
            "score": round(self.score, 4),
            "label": self.label,
            "claims": [asdict(c) for c in self.claims],
            "skipped": [asdict(s) for s in self.skipped],
            "features": {k: round(v, 4) for k, v in self.features.items()},
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """A sentence of the answer that asserts nothing to check, and why."""

    text: str
    reason: str


def evidence_passages(evidence: Sequence[Document | str]) -> list[Passage]:
    """Every evidence document cut into sentences."""
    passages: list[Passage] = []
    for index, item in enumerate(evidence):
        text, title = (item, "") if isinstance(item, str) else (item.text, item.title)
        passages.extend(Passage(s, index, title) for s in split_sentences(text))
    return passages


def verdict_from(report: GroundingReport, verifier: str) -> Verdict:
    """A pipeline :class:`Verdict` from a grounding report; each weak claim is a finding."""
    findings = tuple(
        Finding(
            kind=f"claim_{check.label}",
            message=check.reason,
            claim=check.text,
            passage=check.passage,
            score=round(check.score, 4),
        )
        for check in report.claims
        if check.label != "supported"
    ) + tuple(
        Finding(kind="not_a_claim", message=f"not checked: {s.reason}", claim=s.text)
        for s in report.skipped
    )
    return Verdict(
        confidence=round(report.score, 4),
        label=report.label,
        verifier=verifier,
        findings=findings,
    )
