"""A short answer read with its question becomes the statement the two make together."""

from __future__ import annotations

import pytest

from pinfactory.verify.questions import question_claim


@pytest.mark.parametrize(
    ("question", "answer", "claim"),
    [
        (
            "Between two tennis players Kim Clijsters and Mary Pierce, who is older?",
            "Mary Pierce",
            "Between two tennis players Kim Clijsters and Mary Pierce, Mary Pierce is older.",
        ),
        (
            "Which 1999 French Open - Women's Doubles runner-up was born in Russia on 7 June 1981?",
            "Anna Kournikova",
            "Anna Kournikova is the 1999 French Open - Women's Doubles runner-up that was born "
            "in Russia on 7 June 1981.",
        ),
        ("Who directed Jaws?", "Steven Spielberg.", "Steven Spielberg directed Jaws."),
        ("What is the capital of France?", "Paris", "Paris is the capital of France."),
        ("Whose father was a painter?", "Anna", "Anna's father was a painter."),
        # No safe rewrite: the question, then the answer.
        ("When did the museum open?", "1998", "When did the museum open? 1998."),
        ("What band did Joe join?", "Wings", "What band did Joe join? Wings."),
        ("", "Paris", "Paris"),
    ],
)
def test_question_and_answer_make_one_claim(question: str, answer: str, claim: str) -> None:
    assert question_claim(question, answer) == claim
