"""The citation verifier: every ``[n]`` must point at a passage that supports its sentence.

Passages are numbered from 1 in the order the evidence lists them. A claim
with no citation, a citation to a passage that does not exist, and a
citation whose passage does not support the claim (while another passage
does, or none does) are each a finding.
"""

from __future__ import annotations

from collections.abc import Sequence

from pinfactory.members.base import Completion
from pinfactory.request import Document, Request
from pinfactory.verify.base import Finding, Label, Verdict
from pinfactory.verify.claims import split_claims
from pinfactory.verify.grounding import GroundingChecker


class CitationVerifier:
    name = "citations"

    def __init__(self, checker: GroundingChecker | None = None) -> None:
        self.checker = checker or GroundingChecker()

    def check(
        self,
        request: Request,  # noqa: ARG002 (the Verifier protocol)
        completion: Completion,
        evidence: Sequence[Document],
    ) -> Verdict:
        findings = self.findings(completion.text, evidence)
        claims = len(split_claims(completion.text))
        if not claims:
            return Verdict(0.5, "unverified", self.name)
        bad = {f.claim for f in findings}
        confidence = 1.0 - len(bad) / claims
        label: Label = "supported" if not findings else "unsupported"
        if any(f.kind == "citation_wrong" for f in findings):
            label = "contradicted"
        return Verdict(round(confidence, 4), label, self.name, tuple(findings))

    def findings(self, answer: str, evidence: Sequence[Document]) -> list[Finding]:
        found: list[Finding] = []
        threshold = self.checker.claim_threshold
        for claim in split_claims(answer):
            if not claim.citations:
                found.append(
                    Finding("citation_missing", "the sentence cites no passage", claim.text)
                )
                continue
            for number in claim.citations:
                if not 1 <= number <= len(evidence):
                    found.append(
                        Finding(
                            "citation_dangling",
                            f"[{number}] points at no passage (there are {len(evidence)})",
                            claim.text,
                        )
                    )
                    continue
                passage = evidence[number - 1]
                report = self.checker.assess(claim.text, [passage])
                if report.label == "supported" and report.score >= threshold:
                    continue
                elsewhere = [
                    i + 1
                    for i, other in enumerate(evidence)
                    if i != number - 1
                    and self.checker.assess(claim.text, [other]).label == "supported"
                ]
                hint = f"; passage {elsewhere[0]} does" if elsewhere else ""
                found.append(
                    Finding(
                        "citation_wrong",
                        f"[{number}] does not support the sentence{hint}",
                        claim.text,
                        passage.text,
                        round(report.score, 4),
                    )
                )
        return found
