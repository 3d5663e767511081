"""Each detector fires on its failure and leaves a healthy run alone."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pinfactory.agents import parse_agents
from pinfactory.agents.blackboard import Post
from pinfactory.agents.detectors import detect
from pinfactory.agents.state import RunState, Step


def state(said: list[tuple[str, str]], task: str = "find the order total", **spec: Any) -> RunState:
    names = sorted({agent for agent, _ in said}) or ["a"]
    agents = parse_agents(
        {
            "agents": [{"name": n, "member": "m"} for n in names],
            "termination": {"max_steps": 99},
            **spec,
        },
        "test",
    )
    run = RunState(spec=agents, task=task, seed=0, switches=agents.switches)
    run.posts.append(Post(step=-1, agent="task", kind="task", text=task))
    for i, (agent, text) in enumerate(said):
        run.steps.append(
            Step(
                index=i,
                agent=agent,
                kind="agent",
                round=0,
                request_id=f"r{i}",
                text=text,
                cost_usd=Decimal("0.01"),
            )
        )
        run.posts.append(Post(step=i, agent=agent, kind="message", text=text))
    return run


def codes(run: RunState) -> list[str]:
    return [e.code for e in detect(run)]


def test_a_healthy_exchange_raises_nothing() -> None:
    run = state(
        [
            ("a", "the order total is 40"),
            ("b", "order total 40 plus tax 4"),
            ("a", "so the total is 44"),
        ]
    )
    assert codes(run) == []


def test_step_repetition() -> None:
    run = state(
        [
            ("a", "total 40"),
            ("b", "order total?"),
            ("a", "total 40"),
            ("b", "order?"),
            ("a", "Total 40"),
        ]
    )
    assert "FM-1.3" in codes(run)


def test_task_derailment() -> None:
    run = state(
        [
            ("a", "I like cats"),
            ("b", "dogs are great"),
            ("a", "what about birds"),
            ("b", "parrots talk"),
        ]
    )
    found = detect(run)
    assert [e.code for e in found] == ["FM-2.3"]
    assert found[0].name == "task derailment" and found[0].agents == ["a", "b"]


def test_lost_diversity() -> None:
    run = state([("a", "order total 40"), ("b", "Order total 40")])
    assert codes(run) == ["FM-1.2"]


def test_ignored_input() -> None:
    run = state(
        [("a", "order total 40"), ("b", "no, the order total is 44"), ("a", "order total 40")]
    )
    assert "FM-2.5" in codes(run)


def test_unaware_of_termination() -> None:
    run = state(
        [
            ("a", "final answer: order total 40"),
            ("b", "agreed, total 40"),
            ("a", "the order total again is 40"),
        ]
    )
    assert "FM-1.5" in codes(run)


def test_budget_overrun_and_policy() -> None:
    said = [("a", "order total 40"), ("b", "order total 41")]
    run = state(
        said,
        termination={"max_steps": 9, "budget_usd": "0.015"},
        detectors={"policy": {"FM-1.1": "stop"}},
    )
    found = detect(run)
    assert [(e.code, e.action) for e in found] == [("FM-1.1", "stop")]
    run.events.extend(found)
    assert detect(run) == []  # raised once, not at every step


def test_detectors_off() -> None:
    run = state([("a", "x x"), ("b", "x x")], detectors={"enabled": False})
    assert detect(run) == []
