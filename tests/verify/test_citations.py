"""Every [n] must point at a passage that supports its sentence."""

from __future__ import annotations

from decimal import Decimal

from pinfactory.members.base import Completion, Usage
from pinfactory.request import Document, Request
from pinfactory.verify.citations import CitationVerifier

PASSAGES = [
    Document("Returns are accepted within 30 days of delivery.", "returns"),
    Document("Express delivery costs 8.50 pounds and arrives the next business day.", "shipping"),
]


def kinds(answer: str) -> list[str]:
    return [f.kind for f in CitationVerifier().findings(answer, PASSAGES)]


def test_right_citations_have_no_findings() -> None:
    assert kinds("Returns are accepted within 30 days of delivery [1]. Express delivery "
                 "costs 8.50 pounds [2].") == []  # fmt: skip


def test_wrong_missing_and_dangling_citations() -> None:
    assert kinds("Returns are accepted within 30 days of delivery [2].") == ["citation_wrong"]
    assert kinds("Returns are accepted within 30 days of delivery.") == ["citation_missing"]
    assert kinds("Returns are accepted within 30 days of delivery [7].") == ["citation_dangling"]


def test_wrong_citation_names_the_passage_that_supports() -> None:
    (finding,) = CitationVerifier().findings("Express delivery costs 8.50 pounds [1].", PASSAGES)
    assert "passage 2 does" in finding.message


def test_verdict() -> None:
    completion = Completion("Returns are accepted within 30 days [2].", Usage(), Decimal(0), "m")
    verdict = CitationVerifier().check(Request.from_text("returns?"), completion, PASSAGES)
    assert verdict.label == "contradicted" and verdict.confidence == 0.0
