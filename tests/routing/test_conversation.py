"""The default team tried as a new user would: numbers that are not sums, proofs, follow-ups."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinfactory.lab.team_eval import evaluate, load_items, split
from pinfactory.members.orders import order_in_conversation
from pinfactory.request import Message, Request
from pinfactory.routing import build_router
from pinfactory.routing.conversation import is_follow_up
from pinfactory.routing.hybrid import HybridRouter
from pinfactory.team import load_team

QUERIES = Path(__file__).resolve().parents[2] / "lab" / "default_team" / "queries.yaml"
FRONTIER = {"PINFACTORY_FRONTIER_BASE_URL": "http://127.0.0.1:9/v1"}
FRONTIER["PINFACTORY_FRONTIER_API_KEY"] = "sk-test"


def chat(*turns: str) -> Request:
    roles = ["user", "assistant"]
    return Request(messages=tuple(Message(roles[i % 2], t) for i, t in enumerate(turns)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def router() -> HybridRouter:
    built = build_router(load_team(None, FRONTIER))
    assert isinstance(built, HybridRouter)
    return built


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("Call me at 555-1234 about the meeting", "local"),
        ("Prove that the square root of 2 is irrational", "frontier"),
        ("zxqv blorf", "local"),
        ("What is 17% of 2,340?", "calculator"),
        ("1000 - 357", "calculator"),
        ("Où en est ma commande 1007 ?", "orders"),
    ],
)
def test_the_issue_queries_go_where_they_should(
    router: HybridRouter, text: str, member: str
) -> None:
    assert router.decide(Request.from_text(text)).member == member


def test_a_follow_up_is_routed_with_the_turn_it_continues(router: HybridRouter) -> None:
    request = chat(
        "What's the status of order 1042?", "Order 1042 shipped on 3 March.", "And what about 1043?"
    )
    decision = router.decide(request)
    assert decision.member == "orders" and decision.reason.startswith("follow-up")
    assert order_in_conversation(request) == 1043  # the orders member answers about 1043
    thanks = chat("Where is order 1007?", "Delivered.", "great, thank you")
    assert router.decide(thanks).member == "local"  # not a follow-up: back to the cheap model
    proof = chat(
        "Prove that there are infinitely many primes.",
        "Suppose there were finitely many...",
        "Why must N have a prime factor outside the list?",
    )
    decision = router.decide(proof)
    assert decision.member == "frontier" and "continues a conversation" in decision.reason


def test_conversation_routing_is_a_team_choice(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(
        "name: t\nmembers:\n"
        "  - {name: calculator, kind: calculator, tier: tool, price: {per_call: 0.01}}\n"
        "  - {name: orders, kind: orders, tier: tool, price: {per_call: 0.02}}\n"
        "routing:\n  kind: hybrid\n  fallback: calculator\n"
        "  rules: [{name: o, when: {regex: 'order \\d+'}, route: orders}]\n"
    )
    request = chat("order 1042?", "shipped", "and 1043?")
    assert build_router(load_team(team, {})).decide(request).member == "calculator"
    team.write_text(team.read_text() + "  conversation: true\n")
    assert build_router(load_team(team, {})).decide(request).member == "orders"


def test_follow_ups_are_short_continuations() -> None:
    assert is_follow_up("And what about 1043?") and is_follow_up("1041 too?")
    assert is_follow_up("same question for 1013")
    assert not is_follow_up("Thanks a lot, have a nice day!")
    assert not is_follow_up("and " + "word " * 20)


def test_the_evaluation_set_is_large_and_split_in_two_halves() -> None:
    items = load_items(QUERIES)
    assert len(items) >= 200
    assert sum(1 for i in items if i.messages) >= 15  # conversations, not only single turns
    tune, report = split(items)
    assert len(tune) + len(report) == len(items) and abs(len(tune) - len(report)) <= 12
    assert {id(i) for i in tune}.isdisjoint({id(i) for i in report})
    small = [i for i in report if i.category in ("numbers-not-arithmetic", "follow-up")]
    team = Path(__file__).resolve().parents[2] / "src" / "pinfactory" / "data" / "default-team.yaml"
    score = evaluate(team, small)
    assert score.total == len(small) and score.right >= 0.8 * score.total


def test_yaml_booleans_in_team_rules_say_how_to_fix_them(tmp_path: Path) -> None:
    from pinfactory.errors import TeamFileError

    team = tmp_path / "team.yaml"
    team.write_text(
        "name: t\nmembers:\n"
        "  - {name: calculator, kind: calculator, tier: tool, price: {per_call: 0.01}}\n"
        "routing:\n  kind: rules\n  fallback: calculator\n"
        "  rules: [{name: yes-no, when: {keywords: [yes, no]}, route: calculator}]\n"
    )
    with pytest.raises(TeamFileError, match="quote the word"):
        load_team(team, {})
