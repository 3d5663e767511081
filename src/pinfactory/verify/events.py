"""What verifiers and members made of members notice about an answer: typed events.

An event is one of a tagged union (``kind``): :class:`Disagreement` (two members
answered differently) or :class:`Inconsistency` (samples of one member disagreed).
They ride on the request's tab (``members.calls``) and end in the answer's
``events`` (``pinfactory.outcome``): the response, the chain, metrics and traces
show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Comparison = Literal["numbers", "short", "prose", "empty"]


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Two members answered one request differently (the verifiers' cross-check)."""

    members: tuple[str, str]
    answers: tuple[str, str]
    agreement: float
    comparison: Comparison
    kind: Literal["disagreement"] = "disagreement"

    def to_json(self) -> dict[str, object]:
        return {
            "event": "disagreement",
            "members": list(self.members),
            "answers": list(self.answers),
            "agreement": round(self.agreement, 4),
            "comparison": self.comparison,
        }


@dataclass(frozen=True, slots=True)
class Inconsistency:
    """Samples of one member disagreed with each other (self-consistency)."""

    member: str
    answers: tuple[str, ...]
    agreement: float
    kind: Literal["inconsistency"] = "inconsistency"

    def to_json(self) -> dict[str, object]:
        return {
            "event": "inconsistent",
            "member": self.member,
            "samples": len(self.answers),
            "agreement": round(self.agreement, 4),
            "answers": list(self.answers),
        }


Event = Disagreement | Inconsistency
"""What the verifiers noticed about an answer, as a tagged union (``kind``)."""


__all__ = ["Comparison", "Disagreement", "Event", "Inconsistency"]
