"""The grounding checker: is each claim of an answer supported by the evidence?

For an answer, the evidence (documents or passages) and, when there is one, the
question:

1. **Claims.** The answer is cut into sentences (Punkt: lower-case and
   pre-tokenised text too), citation markers are set apart, a preamble
   ("Here is a summary:") is cut off, and sentences that assert nothing
   (questions, greetings, hedges) are *skipped*, each with the reason.
2. **Question-aware.** A fragment answer ("Paris.", "Mary Pierce") is checked as the
   statement it makes with the question (:func:`~pinfactory.verify.questions.question_claim`:
   "Mary Pierce is older"); any claim is only supported if the evidence that
   supports it also speaks to the question (:data:`QUESTION_RELEVANCE`).
3. **Support.** :class:`~pinfactory.verify.support.SupportModel` picks the
   evidence sentences worth reading and scores each claim: P(supported) from a
   trained head over frozen-MiniLM alignment and lexical features.
4. **Labels.** A claim is *contradicted* when, on topic, a quantity, a bound
   ("under" vs "or longer") or a clause's negation disagrees with the evidence;
   *supported* when its probability reaches the claim threshold; else
   *unsupported*, with the words no passage states.
5. **The answer.** Every claim supported: *supported*; a contradiction:
   *contradicted*; a minority of claims unsupported in an answer of three or
   more: *partly_supported*, naming them; otherwise *unsupported*. The answer's
   score is a probability calibrated on development data (WiCE dev and held-out
   SummEdits domains; :mod:`pinfactory.verify.confidence`) from its claims'
   scores, so a long answer is not punished for being long.

Nothing here calls a remote model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from pinfactory.members.base import Completion
from pinfactory.request import Document, Request
from pinfactory.verify.base import Label, Verdict
from pinfactory.verify.claims import (
    Claim,
    compare_quantities,
    non_claim,
    split_claims,
    strip_preamble,
    tokens,
)
from pinfactory.verify.confidence import Calibrator
from pinfactory.verify.crossencoder import CrossEncoder
from pinfactory.verify.lexical import LexicalChecker
from pinfactory.verify.questions import question_claim, stated_about
from pinfactory.verify.report import (
    ClaimCheck,
    ClaimLabel,
    GroundingReport,
    Skipped,
    evidence_passages,
    verdict_from,
)
from pinfactory.verify.support import FEATURES, SupportModel

FRAGMENT_WORDS = 3  # an answer sentence with this few content words is read with its question
QUESTION_RELEVANCE = 0.45
"""Below this weighted alignment of the question's words with the evidence chosen for a
claim, that evidence does not answer the question: the claim is not supported."""
ON_TOPIC = 0.5  # the share of a claim's stems one evidence sentence must hold for a rule
_YES_NO = re.compile(r"^\s*(yes|no)\b[\s,.!:;-]*", re.IGNORECASE)
_INDEX = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True, slots=True)
class GroundingSettings:
    """``claim_threshold``: P(supported) a claim needs (None: the packaged value, chosen
    on development data); ``top_k``: evidence sentences the model reads per claim."""

    claim_threshold: float | None = None
    top_k: int = 3


@dataclass(frozen=True, slots=True)
class _Unit:
    """A claim as written and what is checked for it (with its question when a fragment)."""

    claim: Claim
    hypothesis: str
    polar: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """What checking one answer involves: its claims, skipped sentences, the evidence
    sentences, and for each claim the indexes of the sentences its model call reads."""

    units: list[_Unit]
    skipped: list[Skipped]
    chosen: list[list[int]]
    sentences: list[str]

    def texts(self) -> list[str]:
        """Every text the encoder must read for this plan."""
        return [u.hypothesis for u in self.units] + [
            self.sentences[i] for c in self.chosen for i in c
        ]


@dataclass(frozen=True, slots=True)
class Signals:
    """What the checker measured for one answer, before the answer-level decision:
    each claim's check, the skipped sentences and the answer's fused features."""

    checks: tuple[ClaimCheck, ...]
    skipped: tuple[Skipped, ...]
    features: dict[str, float]
    no_evidence: bool = False
    off_question: int = 0
    """Claims whose evidence does not answer the question (a rule, like a contradiction)."""


class _SharedVectors:
    """The support model's cached sentence vectors (mean of its word-piece vectors) as an
    :class:`~pinfactory.embeddings.Encoder`, so the word-coverage checker encodes
    nothing the support model has not already read."""

    name = "support-model-shared"

    def __init__(self, model: SupportModel) -> None:
        self.model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        found = self.model.encode(list(texts))
        return np.stack([e.mean for e in found]) if found else np.zeros((0, 1), np.float32)


class GroundingChecker:
    """Checks an answer's claims against evidence passages. A :class:`Verifier`."""

    name = "grounding"

    def __init__(
        self,
        settings: GroundingSettings | None = None,
        model: SupportModel | None = None,
        calibrator: Calibrator | None = None,
        cross: CrossEncoder | None = None,
    ) -> None:
        self.settings = settings or GroundingSettings()
        self.model = model or SupportModel(top_k=self.settings.top_k)
        self._calibrator = calibrator
        self._cross = cross
        self.lexical = LexicalChecker(encoder=_SharedVectors(self.model))

    @property
    def cross(self) -> CrossEncoder | None:
        """The fine-tuned cross-encoder when the calibration reads its scores (``ce_*``
        features), else None (the trained head alone scores claims)."""
        if self._cross is None and any(f.startswith("ce_") for f in self.calibrator.features):
            self._cross = CrossEncoder()
        return self._cross

    @property
    def calibrator(self) -> Calibrator:
        if self._calibrator is None:
            self._calibrator = Calibrator.load()
        return self._calibrator

    @property
    def claim_threshold(self) -> float:
        """P(supported) at which a claim counts as supported (the cross-encoder's
        probability when it is used, else the head's)."""
        if self.settings.claim_threshold is not None:
            return self.settings.claim_threshold
        if self.cross is not None:
            return self.calibrator.cross_threshold
        return self.calibrator.claim_threshold

    def check(
        self, request: Request, completion: Completion, evidence: Sequence[Document]
    ) -> Verdict:
        report = self.assess(completion.text, evidence, question=request.text)
        return verdict_from(report, self.name)

    def plan(self, answer: str, evidence: Sequence[Document | str], question: str = "") -> Plan:
        """The claims to check, the skipped sentences and the evidence each claim reads."""
        units, skipped = _units(answer, question)
        sentences = [p.text for p in evidence_passages(evidence)]
        chosen = [self.model.select(u.hypothesis, sentences) for u in units]
        return Plan(units, skipped, chosen, sentences)

    def claim_features(self, plan: Plan) -> np.ndarray:
        """The feature matrix ``[claims, len(FEATURES)]`` of a plan's claims."""
        rows = [
            self.model.features(u.hypothesis, [plan.sentences[i] for i in c])
            for u, c in zip(plan.units, plan.chosen, strict=True)
        ]
        return np.array(rows) if rows else np.zeros((0, len(FEATURES)))

    def assess(
        self, answer: str, evidence: Sequence[Document | str], question: str = ""
    ) -> GroundingReport:
        """Check every claim of ``answer`` against ``evidence`` (see the module doc)."""
        signals = self.signals(answer, evidence, question)
        if not signals.checks:
            return GroundingReport(0.5, "unverified", (), {"claims": 0.0}, signals.skipped)
        if signals.no_evidence:
            return GroundingReport(0.0, "unsupported", signals.checks, signals.features,
                                   signals.skipped)  # fmt: skip
        return self._report(signals)

    def signals(
        self, answer: str, evidence: Sequence[Document | str], question: str = ""
    ) -> Signals:
        """Every claim's check and the answer's fused features (what the calibration
        reads): the trained head's claim scores, the word-coverage checker's scores and
        the plain word overlap."""
        plan = self.plan(answer, evidence, question)
        units, skipped, chosen, sentences = plan.units, plan.skipped, plan.chosen, plan.sentences
        if not units:
            return Signals((), tuple(skipped), {"claims": 0.0})
        if not sentences:
            missing = tuple(
                ClaimCheck(u.claim.text, "unsupported", 0.0, "", -1, "no evidence") for u in units
            )
            features = {"claims": float(len(units))}
            return Signals(missing, tuple(skipped), features, no_evidence=True)
        self.model.encode(plan.texts())  # one batch: the encoder's fixed cost is paid once
        matrix = self.claim_features(plan)
        head = self.model.head.predict(matrix)
        cross = self.cross
        probabilities = head
        if cross is not None:
            probabilities = cross.predict(
                [
                    (" ".join(sentences[i] for i in picked), unit.hypothesis)
                    for unit, picked in zip(units, chosen, strict=True)
                ]
            )
        relevance = self._question_relevance(question, units, chosen, sentences)
        checks = tuple(
            self._check(unit, float(p), row, [sentences[i] for i in picked], relevant)
            for unit, p, row, picked, relevant in zip(
                units, probabilities, matrix, chosen, relevance, strict=True
            )
        )
        labels = [c.label for c in checks]
        # The claim scores as checked (a rule's contradiction caps them at 0.1).
        scored = answer_features([c.score for c in checks], labels)
        features = scored
        if cross is not None:  # the checks carry the cross-encoder's; the head's beside them
            capped = [
                min(float(p), CONTRADICTED_CAP) if c.label == "contradicted" else float(p)
                for p, c in zip(head, checks, strict=True)
            ]
            features = answer_features(capped, labels)
            features.update({f"ce_{k}": scored[k] for k in CROSS_FEATURES})
        features.update(self._lexical_features([u.claim for u in units], evidence, question))
        off_question = sum(
            not r for r, c in zip(relevance, checks, strict=True) if c.label != "contradicted"
        )
        if off_question:  # the word-coverage checker's weakest claim is capped as the model's
            features["lex_min_score"] = min(features["lex_min_score"], CONTRADICTED_CAP)
        return Signals(checks, tuple(skipped), features, off_question=off_question)

    def _lexical_features(
        self, claims: Sequence[Claim], evidence: Sequence[Document | str], question: str
    ) -> dict[str, float]:
        """The word-coverage checker's answer features (``lex_*``) and the plain word
        overlap with the evidence, of the claims checked (not the sentences skipped)."""
        report = self.lexical.assess_claims(claims, evidence, question=question)
        n = max(1.0, report.features.get("claims", 1.0))
        said = tokens(" ".join(c.text for c in claims))
        wanted = said.content | said.numbers
        seen: set[str] = set()
        for item in evidence:
            found = tokens(item if isinstance(item, str) else item.text)
            seen |= found.content | found.numbers
        return {
            "lex_min_score": report.features.get("min_score", 0.0),
            "lex_mean_score": report.features.get("mean_score", 0.0),
            "lex_min_coverage": report.features.get("min_coverage", 0.0),
            "lex_mean_similarity": report.features.get("mean_similarity", 0.0),
            "lex_contradicted_share": report.features.get("contradicted", 0.0) / n,
            "lex_unsupported_share": report.features.get("unsupported", 0.0) / n,
            "overlap": len(wanted & seen) / len(wanted) if wanted else 1.0,
        }

    def _question_relevance(
        self, question: str, units: list[_Unit], chosen: list[list[int]], sentences: list[str]
    ) -> list[bool]:
        """Whether the evidence chosen for each claim speaks to the question at all (for a
        short answer read with its question: whether its numbers are stated about what the
        question asks, :func:`~pinfactory.verify.questions.stated_about`)."""
        asked = question.strip().rstrip("?")
        if not asked or not tokens(asked).content:
            return [True] * len(units)
        out = []
        for unit, picked in zip(units, chosen, strict=True):
            if unit.hypothesis != unit.claim.text:  # the question is already in the claim
                out.append(stated_about(asked, unit.claim.text, sentences))
                continue
            row = self.model.features(asked, [sentences[i] for i in picked])
            out.append(bool(row[_INDEX["align_weighted"]] >= QUESTION_RELEVANCE))
        return out

    def _check(
        self, unit: _Unit, p: float, row: np.ndarray, passages: list[str], relevant: bool
    ) -> ClaimCheck:
        text = unit.claim.text
        coverage = float(row[_INDEX["stem_coverage"]])
        similarity = float(row[_INDEX["sentence_cosine"]])
        said = tokens(unit.hypothesis)
        everywhere: set[str] = set()
        for passage in passages:
            seen = tokens(passage)
            everywhere |= seen.content | seen.numbers | seen.months
        missing = tuple(sorted((said.content | said.numbers | said.months) - everywhere))
        label: ClaimLabel
        rule = contradiction_rule(row, p)
        if rule is not None:
            label, p = "contradicted", min(p, CONTRADICTED_CAP)
        if rule == "quantity":
            conflict = compare_quantities(unit.hypothesis, passages).conflict
            reason = f"{', '.join(conflict)} disagrees with the passage"
        elif rule == "bound":
            conflict = compare_quantities(unit.hypothesis, passages).bound_conflict
            reason = f"'{', '.join(conflict)}' has the opposite bound there"
        elif rule == "negation":
            reason = "negation: the passage says the opposite of the claim"
        elif not relevant:  # support for the words, about something else: no support
            label, p = "unsupported", min(p, CONTRADICTED_CAP)
            reason = "the passage does not answer the question asked"
        elif p >= self.claim_threshold:
            label, reason = "supported", f"supported (p={p:.2f})"
        else:
            label = "unsupported"
            reason = f"not supported (p={p:.2f})" + (
                f"; not in the evidence: {', '.join(missing[:6])}" if missing else ""
            )
        if unit.polar and label == "supported":
            label, reason = "unverified", "a bare yes/no: the evidence speaks to the question, "
            reason += "but its polarity is not checked"
        return ClaimCheck(
            text=text,
            label=label,
            score=p,
            passage=" ".join(passages),
            document=-1,
            reason=reason,
            coverage=coverage,
            similarity=similarity,
            missing=missing,
            citations=unit.claim.citations,
        )

    def _report(self, signals: Signals) -> GroundingReport:
        """The answer's label and calibrated score from its fused features.

        A rule's contradiction (a quantity, a bound, a negation) makes the answer
        ``contradicted``; a claim whose evidence does not answer the question flags it.
        Otherwise the calibrated probability decides: at or above
        the answer threshold (chosen on development data) the answer is ``supported``;
        below it, the claims below the claim threshold are named (the weakest claim
        when none is) and the answer is ``partly_supported`` when they are at most a
        third of three or more claims, else ``unsupported``.
        """
        calibrator = self.calibrator
        score = calibrator.predict(signals.features)
        checks = signals.checks
        labels = [c.label for c in checks]
        label: Label
        if "contradicted" in labels:
            label = "contradicted"
        elif score >= calibrator.answer_threshold and not signals.off_question:
            label = "supported" if "supported" in labels else "unverified"
        else:
            if not any(lab == "unsupported" for lab in labels):
                weakest = min(
                    (i for i, c in enumerate(checks) if c.label == "supported"),
                    key=lambda i: checks[i].score,
                    default=None,
                )
                if weakest is not None:
                    check = checks[weakest]
                    reason = (
                        f"the weakest claim (p={check.score:.2f}); the answer's confidence "
                        f"{score:.2f} is below {calibrator.answer_threshold:.2f}"
                    )
                    checks = (
                        *checks[:weakest],
                        replace(check, label="unsupported", reason=reason),
                        *checks[weakest + 1 :],
                    )
                    labels = [c.label for c in checks]
            flagged = sum(lab in ("unsupported", "contradicted") for lab in labels)
            if flagged == 0:
                label = "unverified"
            elif len(labels) >= 3 and flagged <= len(labels) / 3:
                label = "partly_supported"
            else:
                label = "unsupported"
        return GroundingReport(score, label, checks, signals.features, signals.skipped)


CONTRADICTED_CAP = 0.1
"""What a claim scores at most when a rule contradicts it or its evidence does not answer
the question (so the answer's calibrated confidence falls with its label)."""
Rule = Literal["quantity", "bound", "negation"]


def contradiction_rule(row: np.ndarray, p: float) -> Rule | None:
    """Which rule, if any, contradicts a claim, read from its :data:`FEATURES` row and the
    model's P(supported): on topic (one chosen sentence holds :data:`ON_TOPIC` of the
    claim's stems), a quantity or a bound that disagrees, or a clause's negation unless
    the model is sure (p >= 0.9). Training applies the same rule to cached rows."""
    if row[_INDEX["stem_coverage_best"]] < ON_TOPIC:
        return None
    if row[_INDEX["quantity_conflict"]] > 0:
        return "quantity"
    if row[_INDEX["quantity_bound_conflict"]] > 0:
        return "bound"
    if row[_INDEX["negation_conflict"]] > 0 and p < 0.9:
        return "negation"
    return None


CROSS_FEATURES = ("min_logit", "second_logit", "mean_logit")
"""The cross-encoder's answer features (as ``ce_<name>``), beside the head's."""


def answer_features(scores: Sequence[float], labels: Sequence[str]) -> dict[str, float]:
    """What the answer-level calibration reads: claim count, the weakest and the mean
    claim logit, the share of claims flagged, contradictions."""
    if not scores:
        return {"claims": 0.0}
    logits = [math.log(max(p, 1e-4) / max(1 - p, 1e-4)) for p in scores]
    ordered = sorted(logits)
    flagged = sum(label in ("unsupported", "contradicted") for label in labels)
    return {
        "claims": float(len(scores)),
        "claims_log": math.log(len(scores)),
        "min_logit": ordered[0],
        "second_logit": ordered[1] if len(ordered) > 1 else ordered[0],
        "mean_logit": float(np.mean(logits)),
        "flagged_share": flagged / len(scores),
        "contradicted": float(sum(label == "contradicted" for label in labels)),
    }


def _units(answer: str, question: str) -> tuple[list[_Unit], list[Skipped]]:
    """The answer's claims worth checking and the sentences skipped (with why)."""
    units: list[_Unit] = []
    skipped: list[Skipped] = []
    asked = question.strip()
    for claim in split_claims(answer):
        text = strip_preamble(claim.text).strip()
        polar = False
        match = _YES_NO.match(text)
        if match is not None:
            rest = text[match.end() :].strip()
            if rest and non_claim(rest) is None:
                text = rest
            elif asked:  # a bare yes/no stands for the question itself
                units.append(_Unit(claim, asked.rstrip(" ?"), polar=True))
                continue
        reason = non_claim(text) if text else "a preamble"
        if reason is not None:
            skipped.append(Skipped(claim.text, reason))
            continue
        said = tokens(text)
        small = len(said.content) + len(said.numbers) + len(said.months) <= FRAGMENT_WORDS
        hypothesis = question_claim(asked, text) if asked and small else text
        units.append(_Unit(Claim(text, claim.citations), hypothesis, polar))
    return units, skipped
