"""Majority, confidence-weighted and judged answers from posts."""

from __future__ import annotations

from pinfactory.agents.aggregation import aggregate, weighted_vote
from pinfactory.agents.blackboard import Post, extract_answer


def post(agent: str, text: str, kind: str = "message") -> Post:
    return Post(step=0, agent=agent, kind=kind, text=text)  # type: ignore[arg-type]


def test_answers_are_normalised() -> None:
    assert extract_answer("I think the answer: 1,204. Sure.") == "1204"
    assert extract_answer("first 3 then 4") == "4"
    assert extract_answer("Shipped!\nmore") == "shipped"
    assert extract_answer("") == ""


def test_majority_counts_each_agents_latest_answer_once() -> None:
    posts = [
        post("a", "answer: 5"),
        post("a", "answer: 7"),
        post("b", "answer: 7"),
        post("c", "answer: 5"),
    ]
    assert aggregate(posts, "majority") == "7"  # a changed its mind: 7 twice, 5 once


def test_confidence_weighted_vote_can_overrule_the_majority() -> None:
    posts = [
        post("a", "answer: 5 confidence: 0.2"),
        post("b", "answer: 5 confidence 20%"),
        post("c", "answer: 9 confidence: 0.9"),
    ]
    assert aggregate(posts, "majority") == "5"
    assert aggregate(posts, "confidence") == "9"
    assert posts[1].confidence == 0.2 and post("d", "no confidence").confidence == 1.0


def test_judge_and_last_and_nobody() -> None:
    posts = [post("a", "answer: 1"), post("j", "answer: 2", "judge"), post("b", "answer: 3")]
    assert aggregate(posts, "judge") == "2"
    assert aggregate(posts, "last") == "3"
    assert aggregate([], "majority") is None and aggregate([], "judge", "j") is None


def test_ties_go_to_the_answer_given_first() -> None:
    assert weighted_vote(["x", "y"], [1.0, 1.0]) == "x"
    assert weighted_vote(["", ""], [1.0, 1.0]) is None
