"""Claims worth checking: sentences, non-claims, quantities and clause-scoped negation."""

from __future__ import annotations

import pytest

from pinfactory.verify.claims import (
    compare_quantities,
    negation_conflict,
    non_claim,
    quantities,
    split_claims,
    split_sentences,
    strip_preamble,
)


def test_lower_case_and_pre_tokenised_text_split_into_sentences() -> None:
    lower = (
        "the senator said the bill would pass. critics disagreed, citing costs of $3.5 "
        "million. dr. jones, a u.s. expert, was not consulted."
    )
    assert split_sentences(lower) == [
        "the senator said the bill would pass.",
        "critics disagreed, citing costs of $3.5 million.",
        "dr. jones, a u.s. expert, was not consulted.",
    ]
    tokenised = "Robert Palmer ( writer ) . He was born in 1945 . he died in 1997 ."
    assert len(split_sentences(tokenised)) == 3
    assert split_sentences("century.First for Women is a magazine.") == [
        "century.",
        "First for Women is a magazine.",
    ]
    assert split_sentences("Two items:\n\n- one thing\n- another thing") == [
        "Two items:",
        "- one thing",
        "- another thing",
    ]


def test_citations_are_set_apart_from_the_claim() -> None:
    (claim,) = split_claims("Returns are accepted within 30 days [1, 2].")
    assert claim.text == "Returns are accepted within 30 days." and claim.citations == (1, 2)


@pytest.mark.parametrize(
    ("sentence", "reason"),
    [
        ("Here is a concise summary of the passage:", "a preamble"),
        ("I know!", "a greeting or pleasantry"),
        ("Thanks for asking.", "a greeting or pleasantry"),
        ("Is the warranty transferable?", "a question"),
        ("I'm not sure about the exact date.", "a hedge about the answer, not a claim"),
        ("I hope this helps!", "a greeting or pleasantry"),
        ("...", "no content word"),
    ],
)
def test_non_claims_are_named(sentence: str, reason: str) -> None:
    assert non_claim(sentence) == reason


@pytest.mark.parametrize(
    "sentence",
    ["The warranty lasts two years.", "Yes, the firm was founded in 1998.", "No refunds apply."],
)
def test_claims_are_not_filtered(sentence: str) -> None:
    assert non_claim(sentence) is None


def test_a_preamble_is_cut_off_the_claim_it_introduces() -> None:
    text = "Here is a concise summary of the passage: The firm grew."
    assert strip_preamble(text) == "The firm grew."


def test_quantities_normalise_separators_multipliers_units_and_bounds() -> None:
    found = quantities("3, 000 people paid $3.5 million for under 6 hours, 16 weeks or longer")
    assert [(q.value, q.unit, q.bound) for q in found] == [
        (3000.0, "peopl", "="),
        (3500000.0, "$", "="),
        (6.0, "hour", "<="),
        (16.0, "week", ">="),
    ]
    assert quantities("COVID-19 hit in the first year") == ()  # a name, and an ordinal word


def test_a_number_found_elsewhere_with_another_unit_still_conflicts() -> None:
    check = compare_quantities(
        "Parents receive 12 weeks of paid parental leave.",
        ["Parents receive 16 weeks of paid parental leave.", "Staff need 12 months of service."],
    )
    assert check.conflict == ("12 week",)
    same = compare_quantities("It costs 3,000 dollars.", ["It costs 3, 000 dollars."])
    assert same.conflict == () and same.missing == ()


def test_an_opposite_bound_is_a_conflict() -> None:
    check = compare_quantities(
        "The rule applies to shifts under 6 hours.",
        ["The rule applies to shifts of 6 hours or longer."],
    )
    assert check.bound_conflict == ("<= 6 hour",)
    agreeing = compare_quantities("It applies over 6 hours.", ["It applies to 6 hours or more."])
    assert agreeing.bound_conflict == ()


@pytest.mark.parametrize(
    ("claim", "evidence", "conflict"),
    [
        ("I can't wait to teach them.", "I can't teach them.", True),
        ("He left, but she did not stay.", "He left but she stayed.", True),
        ("He left.", "He left, but she did not stay.", False),
        (
            "Returns are not accepted after 30 days.",
            "Returns are not accepted after 30 days.",
            False,
        ),
        ("We ship to P.O. boxes.", "We do not ship to P.O. boxes.", True),
    ],
)
def test_negation_is_scoped_to_the_clause_that_states_the_claim(
    claim: str, evidence: str, conflict: bool
) -> None:
    assert negation_conflict(claim, [evidence]) is conflict
