"""The one interface every verifier implements, and the verdict it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from pinfactory.members.base import Completion
from pinfactory.request import Document, Request

Label = Literal["supported", "partly_supported", "unsupported", "contradicted", "unverified"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a verifier noticed, e.g. a claim no passage supports."""

    kind: str
    message: str
    claim: str = ""
    passage: str = ""
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """How far an answer can be trusted: a confidence in [0, 1] and why."""

    confidence: float
    label: Label
    verifier: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)


LABEL_SEVERITY: dict[Label, int] = {
    "supported": 0,
    "unverified": 1,
    "partly_supported": 2,
    "unsupported": 3,
    "contradicted": 4,
}
"""How bad a label is: when verifiers disagree, the worst label stands."""


@runtime_checkable
class Verifier(Protocol):
    """Checks an answer against the evidence.

    Team files name verifiers in ``verification.verifiers``: ``grounding``,
    ``citations``, or any importable class as ``package.module:Class``.
    """

    @property
    def name(self) -> str: ...

    def check(
        self, request: Request, completion: Completion, evidence: Sequence[Document]
    ) -> Verdict: ...
