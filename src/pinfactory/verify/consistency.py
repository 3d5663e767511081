"""Self-consistency and cross-member disagreement.

Two answers *agree* by the comparison that suits them: numbers must match
exactly after normalisation (``1,200`` = ``1200.0``); short answers (five
words or fewer) by normalised token F1; prose by embedding cosine. Self-
consistency samples one member ``k`` times at a temperature above zero and
reports the mean pairwise agreement; a cross-check asks a second member and
records a :class:`Disagreement` when the two answers part.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from pinfactory.embeddings import Encoder, get_encoder
from pinfactory.members.base import Completion, Member
from pinfactory.request import Request
from pinfactory.verify.base import Finding, Label, Verdict
from pinfactory.verify.claims import STOPWORDS, normalise_number, strip_citations
from pinfactory.verify.events import Comparison, Disagreement

Call = Callable[[Member, Request], Awaitable[Completion]]
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Agreement:
    score: float
    comparison: Comparison


def _numbers(text: str) -> set[str]:
    return {normalise_number(n) for n in _NUMBER.findall(text)}


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(strip_citations(text).lower()) if w not in STOPWORDS]


def agreement(a: str, b: str, encoder: Encoder | None = None) -> Agreement:
    """How far two answers say the same thing, in [0, 1], and how that was judged."""
    if not a.strip() or not b.strip():
        return Agreement(float(a.strip() == b.strip()), "empty")
    numbers_a, numbers_b = _numbers(a), _numbers(b)
    if numbers_a and numbers_b:
        return Agreement(float(numbers_a == numbers_b), "numbers")
    words_a, words_b = _words(a), _words(b)
    if len(words_a) <= 5 and len(words_b) <= 5:
        common = len(set(words_a) & set(words_b))
        if not common:
            return Agreement(0.0, "short")
        precision, recall = common / len(set(words_a)), common / len(set(words_b))
        return Agreement(2 * precision * recall / (precision + recall), "short")
    vectors = (encoder or get_encoder("minilm-static")).encode([a, b])
    return Agreement(max(0.0, float(vectors[0] @ vectors[1])), "prose")


def self_agreement(answers: Sequence[str], encoder: Encoder | None = None) -> float:
    """Mean pairwise agreement of several samples (1.0 for one sample)."""
    pairs = list(itertools.combinations(answers, 2))
    if not pairs:
        return 1.0
    return sum(agreement(a, b, encoder).score for a, b in pairs) / len(pairs)


@dataclass(frozen=True, slots=True)
class Consistency:
    """``k`` samples of one member and how far they agree; low agreement is an event."""

    member: str
    answers: tuple[str, ...]
    agreement: float
    verdict: Verdict

    @property
    def consistent(self) -> bool:
        return not self.verdict.findings

    def to_json(self) -> dict[str, object]:
        return {
            "event": "self_consistency" if self.consistent else "inconsistent",
            "member": self.member,
            "samples": len(self.answers),
            "agreement": round(self.agreement, 4),
            "answers": list(self.answers),
        }


async def self_consistency(
    member: Member,
    request: Request,
    k: int = 3,
    temperature: float = 0.8,
    threshold: float = 0.6,
    call: Call | None = None,
) -> Consistency:
    """Sample ``member`` ``k`` times at ``temperature``; their agreement is the confidence.

    ``call`` is how a sample is asked for (the pipeline passes its own, so guards
    apply); by default the member is called directly.
    """
    sampled = replace(request, temperature=temperature)
    ask = call or (lambda m, r: m.complete(r))
    answers = tuple([(await ask(member, sampled)).text for _ in range(k)])
    score = self_agreement(answers)
    findings: tuple[Finding, ...] = ()
    if score < threshold:
        findings = (
            Finding(
                "inconsistent",
                f"{k} samples of '{member.name}' at temperature {temperature:g} agree {score:.0%}",
                claim=" | ".join(answers),
                score=round(score, 4),
            ),
        )
    label: Label = "supported" if score >= threshold else "unverified"
    verdict = Verdict(round(score, 4), label, "self_consistency", findings)
    return Consistency(member.name, answers, score, verdict)


async def cross_check(
    first: Member, second: Member, request: Request, threshold: float = 0.6
) -> tuple[Verdict, Disagreement | None]:
    """Ask two members the same request; a disagreement is returned as an event."""
    a, b = await asyncio.gather(first.complete(request), second.complete(request))
    return compare(first.name, a.text, second.name, b.text, threshold)


def compare(
    first: str, a: str, second: str, b: str, threshold: float = 0.6
) -> tuple[Verdict, Disagreement | None]:
    """The verdict on two members' answers to one request."""
    judged = agreement(a, b)
    if judged.score >= threshold:
        return Verdict(round(judged.score, 4), "supported", "cross_check"), None
    event = Disagreement((first, second), (a, b), judged.score, judged.comparison)
    finding = Finding(
        "disagreement",
        f"'{first}' and '{second}' disagree ({judged.comparison} agreement {judged.score:.0%})",
        claim=a,
        passage=b,
        score=round(judged.score, 4),
    )
    return Verdict(round(judged.score, 4), "unverified", "cross_check", (finding,)), event
