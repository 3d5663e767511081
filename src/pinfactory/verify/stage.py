"""The verify stage of the pipeline: guards in, check, escalate, guards out.

The pipeline hands :meth:`VerifyStage.guard_input` to the request's tab
(``members.calls``), so every member call, inner and extra ones included, is
guarded; it calls :meth:`VerifyStage.review` once the answer is in, which
fills the answer's typed fields (verdict, events, escalation...) and books
every second opinion on the tab. Everything verification does lives here, so
the pipeline's own code stays route -> call -> record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pinfactory.members.base import Completion, Member
from pinfactory.members.calls import call_member, current_tab
from pinfactory.outcome import (
    Answer,
    Escalation,
    Event,
    Inconsistency,
    Injection,
    Sampling,
    Source,
)
from pinfactory.request import Document, Request
from pinfactory.tiers import resolve_member, table_of
from pinfactory.verify.base import LABEL_SEVERITY, Finding, Verdict
from pinfactory.verify.citations import CitationVerifier
from pinfactory.verify.confidence import Calibrator
from pinfactory.verify.consistency import compare, self_consistency
from pinfactory.verify.grounding import GroundingChecker
from pinfactory.verify.guards import check_size, redact, redact_request, screen_documents
from pinfactory.verify.policy import BUILT_IN_VERIFIERS, VerificationSpec, plugin_verifier
from pinfactory.verify.report import verdict_from

CAVEAT = "Caution: parts of this answer could not be verified against the sources."
HELD = "This answer could not be verified and has been sent for human review."


def evidence_of(request: Request, completion: Completion) -> tuple[Document, ...]:
    """What an answer can be checked against: the passages it cites, else the request's."""
    passages: tuple[Document, ...] = getattr(completion, "passages", ())
    return passages or request.documents


class VerifyStage:
    def __init__(self, spec: VerificationSpec, calibrator: Calibrator | None = None) -> None:
        self.spec = spec
        self.grounding = GroundingChecker()
        self.citations = CitationVerifier(self.grounding)
        self.plugins = [
            plugin_verifier(name) for name in spec.verifiers if name not in BUILT_IN_VERIFIERS
        ]
        self._calibrator = calibrator

    @property
    def calibrator(self) -> Calibrator:
        if self._calibrator is None:
            self._calibrator = Calibrator.load()
        return self._calibrator

    def guard_input(self, member: Member, request: Request) -> Request:
        """Size limits, injection screening of documents, PII redaction for remote members."""
        guards = self.spec.guards_for(request.unit)
        check_size(request, guards)
        if guards.screen_injection and request.documents:
            request = replace(request, documents=screen_documents(request.documents).documents)
        if guards.redact_input_pii and _is_remote(member):
            request, _ = redact_request(request)
        return request

    def holds_stream(self, request: Request, may_cite: bool) -> bool:
        """Whether a streamed answer must be made whole before anything is sent: when
        :meth:`review` may check, change or hold it. It may not when nothing could be
        checked (``only_with_evidence``, no documents, and no member that may answer
        cites passages: ``may_cite``), no second opinion is asked and the unit's
        output is not redacted; such a stream is relayed as the member sends it."""
        spec = self.spec
        if request.endpoint != "chat":  # only chat answers are reviewed
            return False
        checked = not spec.only_with_evidence or bool(request.documents) or may_cite
        second = spec.cross_check is not None or spec.self_consistency is not None
        return checked or second or self.spec.guards_for(request.unit).redact_output_pii

    def assess(self, request: Request, completion: Completion) -> tuple[Verdict, float] | None:
        """The verdict and calibrated confidence; None when there is nothing to check."""
        evidence = evidence_of(request, completion)
        if completion.refused or (self.spec.only_with_evidence and not evidence):
            return None
        report = self.grounding.assess(completion.text, evidence, question=request.text)
        verdict = verdict_from(report, "grounding")
        findings = list(verdict.findings)
        if "citations" in self.spec.verifiers and getattr(completion, "passages", None):
            findings.extend(self.citations.findings(completion.text, evidence))
        if report.label == "unverified":
            confidence = 0.5
        else:
            confidence = self.calibrator.predict(report.features)
        label, names = report.label, ["grounding"]
        for plugin in self.plugins:  # the least confident verifier and the worst label stand
            verdict = plugin.check(request, completion, evidence)
            findings.extend(verdict.findings)
            confidence = min(confidence, verdict.confidence)
            if LABEL_SEVERITY[verdict.label] > LABEL_SEVERITY[label]:
                label = verdict.label
            names.append(plugin.name)
        combined = Verdict(round(confidence, 4), label, "+".join(names), tuple(findings))
        return combined, confidence

    async def review(self, answer: Answer, members: Mapping[str, Member]) -> Answer:
        """Verify an answer; escalate, hold or caveat it when confidence is too low.

        Every second opinion, sample and escalation is a member call booked on
        the request's tab (``members.calls``); the answer's ``calls`` include them.
        """
        request, completion = answer.request, answer.completion
        assessed = self.assess(request, completion)
        events, findings = await self._second_opinions(answer, members)
        findings += self._screen_passages(answer)
        if findings:
            if assessed is None:  # no evidence: the samples' agreement is the verdict
                confidence = min(f.score for f in findings)
                assessed = (
                    Verdict(round(confidence, 4), "unverified", "consistency", findings),
                    confidence,
                )
            else:
                verdict, confidence = assessed
                assessed = replace(verdict, findings=verdict.findings + findings), confidence
        answer.events = answer.events + tuple(events)
        if assessed is not None:
            verdict, confidence = assessed
            answer.verdict = replace(verdict, confidence=round(confidence, 4))
            if confidence < self.spec.min_confidence:
                answer = await self._escalate(answer, answer.verdict, members)
        guards = self.spec.guards_for(request.unit)
        if guards.redact_output_pii:
            redaction = redact(answer.completion.text)
            if redaction.found:
                answer.completion = replace(answer.completion, text=redaction.text)
                answer.redacted = tuple(redaction.found)
        if passages := getattr(answer.completion, "passages", ()):
            answer.sources = tuple(Source(i + 1, p.title) for i, p in enumerate(passages))
        answer.calls = tuple(current_tab().calls) or answer.calls
        return answer

    def _screen_passages(self, answer: Answer) -> tuple[Finding, ...]:
        """Flag and fence the stored passages a retrieval answer cites that carry instructions."""
        passages: tuple[Document, ...] = getattr(answer.completion, "passages", ())
        if not passages or not self.spec.guards_for(answer.request.unit).screen_injection:
            return ()
        screening = screen_documents(passages)
        if not screening.flagged:
            return ()
        answer.completion = replace(answer.completion, passages=screening.documents)  # type: ignore[call-arg]
        answer.injection = tuple(
            Injection(index + 1, passages[index].title, text) for index, text in screening.flagged
        )
        return tuple(
            Finding(
                "injection",
                f"passage [{index + 1}] contains an instruction; it was quoted, not obeyed",
                passage=passages[index].text,
            )
            for index, _ in screening.flagged
        )

    async def _second_opinions(
        self, answer: Answer, members: Mapping[str, Member]
    ) -> tuple[list[Event], tuple[Finding, ...]]:
        """Cross-check with another member and sample this one again, as the spec asks.

        Returns the events (disagreement, inconsistency) and their findings.
        """
        request, completion = answer.request, answer.completion
        events: list[Event] = []
        findings: list[Finding] = []
        other = members.get(self.spec.cross_check or "")
        if other is not None and other.name != answer.decision.member:
            second = await call_member(other, request, "cross_check")
            checked, event = compare(
                answer.decision.member, completion.text, other.name, second.text
            )
            if event is not None:
                events.append(event)
                findings.extend(checked.findings)
        sampling = self.spec.self_consistency
        member = members.get(answer.decision.member)
        if sampling is not None and member is not None and member.name in sampling.members:
            consistency = await self_consistency(
                member, request, sampling.samples, sampling.temperature,
                sampling.min_agreement, _sample,
            )  # fmt: skip
            answer.sampling = Sampling(
                sampling.samples, sampling.temperature, consistency.agreement
            )
            if not consistency.consistent:
                events.append(
                    Inconsistency(consistency.member, consistency.answers, consistency.agreement)
                )
                findings.extend(consistency.verdict.findings)
        return events, tuple(findings)

    async def _escalate(
        self, answer: Answer, verdict: Verdict, members: Mapping[str, Member]
    ) -> Answer:
        spec = self.spec
        reason = (
            f"confidence {verdict.confidence:.2f} is below "
            f"{spec.min_confidence:.2f} ({verdict.label})"
        )
        target = escalation_target(spec.escalate_to, members, exclude=answer.decision.member)
        if spec.on_low_confidence == "escalate" and target is not None:
            completion = await call_member(target, answer.request, "escalation")
            escalation = Escalation(
                "tier", reason, target.name, verdict.confidence, verdict.findings
            )
            answer.completion = completion
            answer.decision = replace(
                answer.decision,
                member=target.name,
                tier=target.tier,
                reason=f"{answer.decision.reason}; escalated to '{target.name}': {reason}",
            )
            again = self.assess(answer.request, answer.completion)
            if again is not None:
                answer.verdict = replace(again[0], confidence=round(again[1], 4))
        elif spec.on_low_confidence == "review":
            escalation = Escalation(
                "review", reason, "review", verdict.confidence, verdict.findings,
                answer=answer.completion.text,
            )  # fmt: skip
            answer.completion = replace(answer.completion, text=HELD, refused=True)
        else:
            escalation = Escalation("caveat", reason, "user", verdict.confidence, verdict.findings)
            answer.completion = replace(
                answer.completion, text=f"{answer.completion.text}\n\n{CAVEAT}"
            )
        answer.escalation = escalation
        return answer


async def _sample(member: Member, request: Request) -> Completion:
    return await call_member(member, request, "sample")


def _is_remote(member: Member) -> bool:
    return member.kind == "openai_http" or "remote" in member.tags


def escalation_target(
    where: str | None, members: Mapping[str, Member], exclude: str
) -> Member | None:
    """The member ``where`` names (``name`` or ``tier:<tier>``, the cheapest of that tier)."""
    if where is None:
        return None
    table = table_of(members.values(), exclude=exclude)
    name = resolve_member(table, where)
    return members.get(name) if name is not None else None


__all__ = ["CAVEAT", "HELD", "Finding", "VerifyStage", "escalation_target", "evidence_of"]
