"""The trained grounding checker with its shipped weights: claims, labels, aggregation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pinfactory.verify.claims import split_claims, tokens
from pinfactory.verify.confidence import (
    FUSION_CANDIDATES,
    Calibrator,
    expected_calibration_error,
)
from pinfactory.verify.grounding import GroundingChecker
from pinfactory.verify.lexical import LexicalChecker
from pinfactory.verify.questions import stated_about
from pinfactory.verify.support import FEATURES, SupportHead

POLICY = [
    "Orders ship within 2 business days. Standard shipping costs $4.95 and is free for orders "
    "over $50. We do not ship to P.O. boxes.",
    "Returns are accepted within 30 days of delivery. Refunds are issued within 5 business days.",
    "The warranty was introduced in March 2019 by Pinfactory Supply.",
    "Eligible employees receive 16 weeks of paid parental leave. Employees must have worked "
    "here for 12 months to be eligible.",
    "The night-shift allowance applies to shifts of 6 hours or longer.",
]


@pytest.mark.parametrize(
    ("answer", "label", "why"),
    [
        ("Returns are accepted within 30 days of delivery.", "supported", "supported"),
        ("Standard shipping is free for orders over $50.", "supported", "supported"),
        ("Returns are accepted within 60 days of delivery.", "contradicted", "60 day"),
        ("Parents receive 12 weeks of paid parental leave.", "contradicted", "12 week"),
        ("The allowance applies to shifts under 6 hours.", "contradicted", "opposite bound"),
        ("We ship to P.O. boxes.", "contradicted", "negation"),
        ("The moon is made of cheese.", "unsupported", "moon"),
    ],
)
def test_claim_labels(checker: GroundingChecker, answer: str, label: str, why: str) -> None:
    report = checker.assess(answer, POLICY)
    (claim,) = report.claims
    assert claim.label == label, claim.reason
    assert why in claim.reason.lower()
    assert report.label == label


def test_a_paraphrase_is_supported(checker: GroundingChecker) -> None:
    report = checker.assess("Items can be sent back within 30 days of delivery.", POLICY)
    assert report.label == "supported", report.claims[0].reason


def test_one_unsupported_sentence_among_many_is_partly_supported_and_named(
    checker: GroundingChecker,
) -> None:
    answer = (
        "Orders ship within 2 business days. Standard shipping costs $4.95. Returns are "
        "accepted within 30 days of delivery. Refunds are issued within 5 business days. The "
        "warranty was introduced in March 2019. Every order includes a free chocolate bar."
    )
    report = checker.assess(answer, POLICY)
    flagged = [c.text for c in report.claims if c.label != "supported"]
    assert report.label == "partly_supported"
    assert flagged == ["Every order includes a free chocolate bar."]


def test_longer_supported_answers_are_not_scored_lower_for_length(
    checker: GroundingChecker,
) -> None:
    short = checker.assess("Returns are accepted within 30 days of delivery.", POLICY)
    long = checker.assess(
        "Returns are accepted within 30 days of delivery. Refunds are issued within 5 business "
        "days. Orders ship within 2 business days. Standard shipping costs $4.95.",
        POLICY,
    )
    assert long.label == "supported"
    assert long.score >= short.score - 0.1


def test_non_claims_are_skipped_and_said_so(checker: GroundingChecker) -> None:
    report = checker.assess(
        "Here is a concise summary of the passage: Returns are accepted within 30 days of "
        "delivery. I hope this helps!",
        POLICY,
    )
    assert [c.text for c in report.claims] == ["Returns are accepted within 30 days of delivery."]
    assert [s.reason for s in report.skipped] == ["a greeting or pleasantry"]
    assert report.label == "supported"
    alone = checker.assess("Returns are accepted within 30 days of delivery.", POLICY)
    assert report.features["lex_min_score"] == alone.features["lex_min_score"]  # skipped: unread


def test_a_fragment_answer_is_read_with_its_question(checker: GroundingChecker) -> None:
    right = checker.assess("30 days.", POLICY, question="How long do I have to return an item?")
    wrong = checker.assess("90 days.", POLICY, question="How long do I have to return an item?")
    assert right.label == "supported" and wrong.label != "supported"


def test_a_short_answer_stated_about_something_else_is_not_support(
    checker: GroundingChecker,
) -> None:
    asked = "How long do I have to return an item?"
    other = checker.assess("5 business days.", POLICY, question=asked)  # the refunds' delay
    assert other.label != "supported"
    assert "question" in other.claims[0].reason
    assert other.score < checker.calibrator.answer_threshold  # a gate on confidence holds it
    assert checker.assess("30 days.", POLICY, question=asked).label == "supported"
    assert stated_about("When do orders ship?", "2 business days.", POLICY)
    assert not stated_about("When do refunds arrive?", "2 business days.", POLICY)
    assert stated_about("Who founded it?", "Pinfactory Supply.", POLICY)  # no number: not held
    warranty = ["The warranty is two years."]  # the answer may restate what was asked
    assert stated_about("How long is the warranty?", "The warranty is two years.", warranty)
    calibrator = Calibrator.load()
    assert calibrator.predict({"claims": 2.0}) == 0.5  # checked against no evidence: unmeasured


def test_support_for_the_words_but_not_the_question_is_not_support(
    checker: GroundingChecker,
) -> None:
    evidence = ["Our head office is in Leeds. The Leeds office opened in 2004."]
    report = checker.assess(
        "Our head office in Leeds opened in 2004.",
        evidence,
        question="What is the refund policy for damaged goods?",
    )
    assert report.label == "unsupported"
    assert "question" in report.claims[0].reason


@pytest.mark.parametrize("answer", ["", "   ", "[1]", "Thanks!"])
def test_an_answer_without_claims_is_unverified(checker: GroundingChecker, answer: str) -> None:
    report = checker.assess(answer, POLICY)
    assert report.label == "unverified" and report.claims == () and report.score == 0.5


def test_no_evidence_means_unsupported(checker: GroundingChecker) -> None:
    report = checker.assess("Returns are accepted within 30 days.", [])
    assert report.label == "unsupported" and report.score == 0.0


def test_halueval_subsample_beats_chance_with_calibrated_confidence(
    checker: GroundingChecker, halueval: dict[str, list[dict[str, Any]]]
) -> None:
    items = halueval["qa_multi-turn_data.json"][::10]
    labels, scores = [], []
    for item in items:
        for answer, label in ((item["right_answer"], 1), (item["hallucinated_answer"], 0)):
            report = checker.assess(answer, [item["knowledge"]], question=item["question"])
            labels.append(label)
            scores.append(report.score)
    assert roc_auc_score(labels, scores) >= 0.6
    assert expected_calibration_error(scores, labels) < 0.25
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_the_shipped_head_and_calibration_load_and_agree() -> None:
    head = SupportHead.load()
    assert head.features == FEATURES
    calibrator = Calibrator.load()
    assert 0.0 < calibrator.claim_threshold < 1.0
    assert 0.0 < calibrator.answer_threshold < 1.0
    assert calibrator.features == FUSION_CANDIDATES[calibrator.meta["inputs"]]
    fitted_on = set(calibrator.meta["fitted_on"])
    assert {"wice-dev", "summedits-news", "fever-heldout", "mnli-heldout"} <= fitted_on
    assert not fitted_on & {"wice-test", "summac-factcc", "halueval-qa_one-turn"}
    probabilities = head.predict(np.zeros((3, len(FEATURES))))
    assert probabilities.shape == (3,) and ((probabilities > 0) & (probabilities < 1)).all()


def test_a_low_fused_confidence_names_the_weakest_claim(checker: GroundingChecker) -> None:
    strict = GroundingChecker(model=checker.model, calibrator=Calibrator.load())
    strict.calibrator.answer_threshold = 0.999  # nothing clears it
    report = strict.assess(
        "Returns are accepted within 30 days of delivery. Orders ship within 2 business days.",
        POLICY,
    )
    flagged = [c for c in report.claims if c.label == "unsupported"]
    assert report.label == "unsupported" and len(flagged) == 1
    assert "weakest claim" in flagged[0].reason
    assert flagged[0].score == min(c.score for c in report.claims)


def test_the_lexical_baseline_still_checks() -> None:
    report = LexicalChecker().assess("Returns are accepted within 60 days of delivery.", POLICY)
    assert report.label == "contradicted"


def test_claims_keep_their_citations_and_abbreviations() -> None:
    claims = split_claims("Dr. Smith works at the U.S. office [1]. It opened in 1999 [2, 3].")
    assert [c.text for c in claims] == ["Dr. Smith works at the U.S. office.", "It opened in 1999."]
    assert [c.citations for c in claims] == [(1,), (2, 3)]


def test_numbers_are_normalised() -> None:
    assert tokens("It cost 1,200 dollars").numbers == tokens("It cost 1200 dollars").numbers
    assert tokens("It cost 3, 000 dollars").numbers == tokens("It cost 3000 dollars").numbers
    assert tokens("twelve days").numbers == frozenset({"12"})
    assert tokens("the first one is a 2014 film").numbers == frozenset({"2014"})


def test_a_rule_contradiction_caps_the_score_the_calibration_reads(
    checker: GroundingChecker,
) -> None:
    report = checker.assess("Returns are accepted within 60 days of delivery.", POLICY)
    assert report.label == "contradicted"
    assert report.features["min_logit"] <= np.log(0.1 / 0.9) + 1e-9
