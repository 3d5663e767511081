"""The word-coverage checker the trained one replaced, kept as a baseline and a fallback.

It was the project's grounding checker until the trained support model
(:mod:`pinfactory.verify.grounding`); ``bench/grounding_eval.py`` runs it side by side.

For every claim (sentence) of the answer the checker finds the evidence
sentences that support it best (up to two, so a claim joining two facts is
not penalised) and measures:

- **coverage**: the weighted share of the claim's content stems found there.
  Stems that only echo the question weigh little (restating the question
  proves nothing); names and numbers weigh double.
- **agreement** of numbers, dates and named entities: a number or date the
  evidence does not state, where the passage speaks of other numbers, is a
  *contradiction*; so is a name absent from all evidence in a claim whose
  other words the passage covers (a substituted entity), and a negation the
  passage does not share.
- **similarity**: cosine of static MiniLM embeddings, claim against passage.

Each claim is *supported*, *unsupported* or *contradicted*, with the passage;
the answer's score is its weakest claim's. Nothing here calls a remote model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pinfactory.embeddings import Encoder, get_encoder
from pinfactory.members.base import Completion
from pinfactory.request import Document, Request
from pinfactory.verify.base import Label, Verdict
from pinfactory.verify.claims import Claim, Tokens, split_claims, tokens
from pinfactory.verify.report import (
    ClaimCheck,
    ClaimLabel,
    GroundingReport,
    Passage,
    evidence_passages,
    verdict_from,
)

ECHO_WEIGHT = 0.25  # a stem the question already contains
ENTITY_WEIGHT = 2.0
NUMBER_WEIGHT = 2.0
SECOND_SENTENCE = 0.5  # the weight of what only a second evidence sentence covers
_YES_NO = re.compile(r"^\s*(yes|no)\b[\s,.!:;-]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GroundingSettings:
    """Thresholds of the checker; the defaults were tuned on HaluEval qa_one-turn only."""

    supported_at: float = 0.8
    contradiction_context: float = 0.5
    order_weight: float = 0.25
    similarity_weight: float = 0.15
    encoder: str = "minilm-static"


class LexicalChecker:
    """Checks an answer's claims by word coverage. A :class:`Verifier`."""

    name = "lexical"

    def __init__(
        self, settings: GroundingSettings | None = None, encoder: Encoder | None = None
    ) -> None:
        self.settings = settings or GroundingSettings()
        self._encoder = encoder

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = get_encoder(self.settings.encoder)
        return self._encoder

    def check(
        self, request: Request, completion: Completion, evidence: Sequence[Document]
    ) -> Verdict:
        report = self.assess(completion.text, evidence, question=request.text)
        return verdict_from(report, self.name)

    def assess(
        self, answer: str, evidence: Sequence[Document | str], question: str = ""
    ) -> GroundingReport:
        """Check every claim of ``answer`` against ``evidence``."""
        return self.assess_claims(split_claims(answer), evidence, question)

    def assess_claims(
        self, claims: Sequence[Claim], evidence: Sequence[Document | str], question: str = ""
    ) -> GroundingReport:
        """Check ``claims`` (already split: the trained checker passes the sentences it
        checks, without the preambles and pleasantries it skipped) against ``evidence``."""
        passages = evidence_passages(evidence)
        asserted = [_assertion(c, question) for c in claims]
        checked = [c for c, _ in asserted if c is not None]
        polar = [p for c, p in asserted if c is not None]
        if not checked:
            return GroundingReport(0.5, "unverified", (), {"claims": 0.0})
        if not passages:
            missing = tuple(
                ClaimCheck(c.text, "unsupported", 0.0, "", -1, "no evidence", 0.0, 0.0)
                for c in checked
            )
            return GroundingReport(0.0, "unsupported", missing, {"claims": float(len(checked))})
        vectors = self.encoder.encode([c.text for c in checked] + [p.text for p in passages])
        claim_vectors, passage_vectors = vectors[: len(checked)], vectors[len(checked) :]
        echo = tokens(question).content | tokens(question).entities if question else frozenset()
        passage_tokens = [tokens(p.text) for p in passages]
        everywhere = _union(passage_tokens)
        checks: list[ClaimCheck] = []
        for claim, is_polar, vector in zip(checked, polar, claim_vectors, strict=True):
            similarities = passage_vectors @ vector
            checks.append(
                self._check_claim(
                    claim, is_polar, passages, passage_tokens, everywhere, similarities, echo
                )
            )
        return _report(tuple(checks))

    def _check_claim(
        self,
        claim: Claim,
        polar: bool,
        passages: Sequence[Passage],
        passage_tokens: Sequence[Tokens],
        everywhere: Tokens,
        similarities: np.ndarray,
        echo: frozenset[str],
    ) -> ClaimCheck:
        said = tokens(claim.text)
        weights = _weights(said, echo)
        total = sum(weights.values())
        if total == 0:
            return ClaimCheck(claim.text, "supported", 1.0, "", -1, "nothing to check", 1.0, 1.0)
        chosen, covered, joined = _support(weights, passage_tokens, similarities)
        first = chosen[0]
        # What one sentence says outright counts fully; what needs a second sentence
        # (a join the claim makes) counts half.
        coverage = (
            sum(weights[t] for t in covered) + SECOND_SENTENCE * sum(weights[t] for t in joined)
        ) / total
        covered |= joined
        similarity = float(similarities[first])
        pairs = said.bigrams
        order = (
            len(pairs & frozenset().union(*(passage_tokens[i].bigrams for i in chosen)))
            / len(pairs)
            if pairs
            else coverage
        )
        missing = tuple(sorted(t for t in weights if t not in covered))
        settings = self.settings
        score = (
            (1 - settings.order_weight - settings.similarity_weight) * coverage
            + settings.order_weight * order
            + settings.similarity_weight * max(similarity, 0.0)
        )
        support = _union([passage_tokens[i] for i in chosen])
        label, reason = self._label(
            said, support, passage_tokens[first], everywhere, weights, covered, coverage, score
        )
        if label == "contradicted":
            score *= 0.25
        elif polar and coverage >= settings.contradiction_context:
            label, reason = "unverified", "a bare yes/no: the evidence covers the question's "
            reason += "subjects, but words alone cannot confirm the polarity"
            score = settings.supported_at
        passage = " ".join(passages[i].text for i in sorted(chosen))
        return ClaimCheck(
            text=claim.text,
            label=label,
            score=score,
            passage=passage,
            document=passages[first].document,
            reason=reason,
            coverage=coverage,
            similarity=similarity,
            order=order,
            missing=missing,
            citations=claim.citations,
        )

    def _label(
        self,
        said: Tokens,
        support: Tokens,
        first: Tokens,
        everywhere: Tokens,
        weights: dict[str, float],
        covered: set[str],
        coverage: float,
        score: float,
    ) -> tuple[ClaimLabel, str]:
        context = _context_coverage(weights, covered)
        if context >= self.settings.contradiction_context:
            for number in sorted(said.numbers - support.numbers):
                if support.numbers and number not in everywhere.numbers:
                    found = ", ".join(sorted(support.numbers))
                    return "contradicted", f"number {number} disagrees with the passage ({found})"
            for month in sorted(said.months - support.months):
                if support.months and month not in everywhere.months:
                    return "contradicted", f"date ({month}) disagrees with the passage"
            strangers = sorted(
                e for e in said.entities if e in weights and weights[e] >= ENTITY_WEIGHT
                and e not in everywhere.content
            )  # fmt: skip
            if strangers and context >= 0.75:
                return "contradicted", f"names {', '.join(strangers)}, which no passage mentions"
            if (
                said.negated != first.negated
                and len(said.content) >= 3
                and coverage >= self.settings.supported_at
            ):
                which = "the claim" if said.negated else "the passage"
                return "contradicted", f"negation: only {which} says 'not'"
        missing_hard = [t for t in weights if t not in covered and weights[t] >= NUMBER_WEIGHT]
        if score >= self.settings.supported_at and not missing_hard:
            return "supported", f"{coverage:.0%} of the claim is in the passage"
        if missing_hard:
            return "unsupported", f"not in the evidence: {', '.join(sorted(missing_hard))}"
        return "unsupported", f"only {coverage:.0%} of the claim is in the evidence"


def _assertion(claim: Claim, question: str) -> tuple[Claim | None, bool]:
    """What a claim asserts, and whether it is a bare yes/no about the question.

    A leading "Yes,"/"No," is dropped; a bare "yes"/"no" stands for the question itself.
    """
    match = _YES_NO.match(claim.text)
    if match is None:
        return claim, False
    rest = claim.text[match.end() :].strip()
    said = tokens(rest)
    if said.content or said.numbers or said.months:  # "Yes, we do." says no more than "Yes."
        return Claim(rest, claim.citations), False
    if not question:
        return None, False
    # The polarity of a bare yes/no cannot be read off the words; what can be checked is
    # that the evidence speaks of what the question asks about.
    return Claim(question.rstrip(" ?"), claim.citations), True


def _weights(said: Tokens, echo: frozenset[str]) -> dict[str, float]:
    """How much each checkable item of a claim counts towards its coverage."""
    weights: dict[str, float] = {}
    for stem in said.content:
        weight = ENTITY_WEIGHT if stem in said.entities else 1.0
        weights[stem] = weight * (ECHO_WEIGHT if stem in echo else 1.0)
    for number in said.numbers:
        weights["#" + number] = NUMBER_WEIGHT
    for month in said.months:
        weights["@" + month] = NUMBER_WEIGHT
    return weights


def _has(passage: Tokens, item: str) -> bool:
    if item.startswith("#"):
        return item[1:] in passage.numbers
    if item.startswith("@"):
        return item[1:] in passage.months
    return item in passage.content


def _context_coverage(weights: dict[str, float], covered: set[str]) -> float:
    """Coverage of a claim's plain words: is the passage about the same thing?"""
    plain = [t for t in weights if t[0] not in "#@"]
    if not plain:
        return 1.0
    return sum(1 for t in plain if t in covered) / len(plain)


def _support(
    weights: dict[str, float], passage_tokens: Sequence[Tokens], similarities: np.ndarray
) -> tuple[list[int], set[str], set[str]]:
    """The passage that covers most of the claim's weight (plus 0.01 x similarity), and a
    second one if it adds what the first lacks: (chosen indexes, covered by the first,
    added by the second)."""
    gains = [
        sum(w for t, w in weights.items() if _has(p, t)) + 0.01 * float(s)
        for p, s in zip(passage_tokens, similarities, strict=True)
    ]
    first = int(np.argmax(gains))
    covered = {t for t in weights if _has(passage_tokens[first], t)}
    chosen = [first]
    extra = [
        sum(w for t, w in weights.items() if t not in covered and _has(p, t))
        for p in passage_tokens
    ]
    second = int(np.argmax(extra))
    joined: set[str] = set()
    if extra[second] > 0 and second != first:
        chosen.append(second)
        joined = {t for t in weights if t not in covered and _has(passage_tokens[second], t)}
    return chosen, covered, joined


def _union(many: Sequence[Tokens]) -> Tokens:
    content: set[str] = set()
    numbers: set[str] = set()
    entities: set[str] = set()
    months: set[str] = set()
    for item in many:
        content |= item.content
        numbers |= item.numbers
        entities |= item.entities
        months |= item.months
    return Tokens(
        frozenset(content),
        frozenset(numbers),
        frozenset(entities),
        any(item.negated for item in many),
        frozenset(months),
    )


def _report(checks: tuple[ClaimCheck, ...]) -> GroundingReport:
    labels = {c.label for c in checks}
    label: Label = (
        "contradicted"
        if "contradicted" in labels
        else "unsupported"
        if "unsupported" in labels
        else "supported"
        if "supported" in labels
        else "unverified"
    )
    scores = [c.score for c in checks]
    features = {
        "claims": float(len(checks)),
        "min_score": min(scores),
        "mean_score": float(np.mean(scores)),
        "min_coverage": min(c.coverage for c in checks),
        "mean_similarity": float(np.mean([c.similarity for c in checks])),
        "contradicted": float(sum(c.label == "contradicted" for c in checks)),
        "unsupported": float(sum(c.label == "unsupported" for c in checks)),
        "missing": float(sum(len(c.missing) for c in checks)),
    }
    return GroundingReport(min(scores), label, checks, features)
