"""What a sentence embedding misses and a semantic cache hit must not (pinfactory.paraphrase)."""

from __future__ import annotations

import pytest

from pinfactory.paraphrase import anchors_of, conflict


@pytest.mark.parametrize(
    ("stored", "asked", "why"),
    [
        ("What is the status of order 1042?", "What is the status of order 1043?", "numbers"),
        ("What's the weather in Oslo tomorrow?", "What's the weather in Lisbon tomorrow?", "names"),
        ("Summarise this in French", "Summarise this in English", "names"),
        ("Cancel my order", "Don't cancel my order", "negation"),
        ("Can I return it without the receipt?", "Can I return it with the receipt?", "negation"),
        ("Convert 10 miles to km", "Convert 10 km to miles", "'km to miles' reversed"),
        ("Flights from Paris to Rome", "Flights from Rome to Paris", "reversed"),
        ("Is tea healthier than coffee?", "Is coffee healthier than tea?", "another order"),
        ("Move the meeting to before lunch", "Move the meeting to after lunch", "contrast"),
    ],
)
def test_wordings_that_ask_different_things_conflict(stored: str, asked: str, why: str) -> None:
    reason = conflict(anchors_of(asked), anchors_of(stored))
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("How do I reset my password?", "how can i reset my password"),
        ("What is the status of my order 1042?", "what's the status of my order 1042"),
        ("I need a new credit card. My old one is broken", "My card is broken. I need a new one"),
        ("Hello. Paris is lovely in May", "Paris is lovely in May"),
        ("Is it going to rain in Lisbon tomorrow?", "Will it rain in Lisbon tomorrow?"),
    ],
)
def test_paraphrases_do_not_conflict(stored: str, asked: str) -> None:
    assert conflict(anchors_of(asked), anchors_of(stored)) is None


def test_anchors_name_what_they_found() -> None:
    found = anchors_of("Send 2 boxes from Leeds to York, not by air. Thanks!")
    assert found.numbers == ("2",)
    assert found.names == ("leeds", "york")  # "Send" and "Thanks" open their sentences
    assert found.negations == 1
    assert ("to", "leeds", "york") in found.relations
