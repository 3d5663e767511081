"""Runs on scripted and tool members: every step a pipeline request, recorded and costed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pinfactory.agents import AgentRunner, AgentsSpec, LedgerRunStore, parse_agents, run_agents
from pinfactory.agents.spec import AgentSpec
from pinfactory.errors import NotFound
from pinfactory.pipeline import Pipeline
from pinfactory.request import Request
from pinfactory.testing.scripted import ScriptedMember
from tests.conftest import ledger_rows


def spec(**fields: Any) -> AgentsSpec:
    return parse_agents(fields, "test")


def script(pipeline: Pipeline, name: str, replies: list[str]) -> ScriptedMember:
    """Make member ``name`` answer ``replies`` in turn (keeping its price)."""
    old = pipeline.members[name]
    calls = iter(replies * 100)
    member = ScriptedMember.of(name, lambda _request: next(calls), price=old.price)
    pipeline.members[name] = member
    return member


def ledger_path(pipeline: Pipeline) -> Path:
    return Path(pipeline.team.ledger_location)


async def test_round_robin_with_a_tool_call_is_booked_step_by_step(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["I will compute. CALL calculator: 12 * 7"])
    script(pipeline, "bob", ["answer: 84"])
    agents = spec(
        agents=[
            {"name": "reader", "member": "alice", "tools": ["calculator"]},
            {"name": "checker", "member": "bob"},
        ],
        termination={"max_steps": 3},
    )
    state = await run_agents(pipeline, agents, "What is 12 times 7?")
    assert [(s.agent, s.kind, s.member) for s in state.steps] == [
        ("reader", "agent", "alice"),
        ("reader", "tool", "calculator"),
        ("checker", "agent", "bob"),
    ]
    assert state.posts[2].agent == "calculator" and state.posts[2].text == "12 * 7 = 84"
    assert state.answer == "84"
    assert state.status == "completed" and "step limit" in state.reason
    rows = ledger_rows(ledger_path(pipeline), f"tags LIKE '%{state.id}%'")
    assert [r["request_id"] for r in rows] == [s.request_id for s in state.steps]
    assert all(r["status"] == 200 for r in rows)
    assert state.cost_usd == Decimal("0.0031")  # 0.001 + 0.0001 + 0.002
    spend = {r.key: r.cost_usd for r in await pipeline.ledger.spend("tag")}
    assert spend[state.tag] == state.cost_usd
    events = await pipeline.ledger.audit(state.id)
    assert events[-1].kind == "agents.run"


async def test_same_seed_same_run_other_seed_other_speakers(pipeline: Pipeline) -> None:
    for name in ("alice", "bob", "judge"):
        script(pipeline, name, [f"{name} says hi"])
    agents = spec(
        agents=[{"name": n, "member": n} for n in ("alice", "bob", "judge")],
        protocol={"kind": "selector", "otherwise": "random"},
        termination={"max_steps": 12},
        detectors={"enabled": False},
    )
    first = await run_agents(pipeline, agents, "chat", seed=1)
    again = await run_agents(pipeline, agents, "chat", seed=1)
    other = await run_agents(pipeline, agents, "chat", seed=2)
    assert first.turns == again.turns
    assert first.turns != other.turns
    assert all(a != b for a, b in zip(first.turns, first.turns[1:], strict=False))


async def test_selector_rules_and_router(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["please add these"])
    script(pipeline, "bob", ["NEED A JUDGE"])
    script(pipeline, "judge", ["answer: 5"])
    agents = spec(
        agents=[
            {"name": "a", "member": "alice"},
            {"name": "b", "member": "bob"},
            {"name": "j", "member": "judge"},
        ],
        protocol={
            "kind": "selector",
            "rules": [{"contains": "judge", "agent": "j"}],
            "otherwise": "router",
        },
        termination={"max_steps": 3},
    )
    state = await run_agents(pipeline, agents, "start")
    # the router sends "start" to alice (fallback), "please add these" to bob (rule 'sums')
    assert state.turns == ["a", "b", "j"]


async def test_debate_then_judge(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["answer: 3", "answer: 4"])
    script(pipeline, "bob", ["answer: 4"])
    script(pipeline, "judge", ["The better argument: answer: 4"])
    agents = spec(
        agents=[
            {"name": "pro", "member": "alice"},
            {"name": "con", "member": "bob"},
            {"name": "j", "member": "judge"},
        ],
        protocol={"kind": "debate", "rounds": 2, "judge": "j"},
        aggregation="judge",
    )
    state = await run_agents(pipeline, agents, "2 + 2?")
    assert state.turns == ["pro", "con", "pro", "con", "j"]
    assert [p.round for p in state.posts[1:]] == [0, 0, 1, 1, 2]
    assert state.posts[-1].kind == "judge"
    assert state.answer == "4" and state.reason == "the protocol ended"


async def test_handoff_passes_the_turn_only_where_allowed(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["not mine. HANDOFF: billing"])
    script(pipeline, "bob", ["HANDOFF: triage"])  # not in billing's handoffs: the run ends
    agents = spec(
        agents=[
            {"name": "triage", "member": "alice", "handoffs": ["billing"]},
            {"name": "billing", "member": "bob"},
        ],
        protocol={"kind": "handoff"},
        termination={"max_steps": 10},
    )
    state = await run_agents(pipeline, agents, "refund please")
    assert state.turns == ["triage", "billing"]


async def test_until_agreement_and_majority(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["answer: 9"])
    script(pipeline, "bob", ["answer: 8", "answer: 9"])
    agents = spec(
        agents=[{"name": "a", "member": "alice"}, {"name": "b", "member": "bob"}],
        termination={"max_steps": 20, "until": {"agreement": 2}},
        aggregation="majority",
    )
    state = await run_agents(pipeline, agents, "guess")
    assert state.turns == ["a", "b", "a", "b"]
    assert state.reason == "2 agents agreed on 9" and state.answer == "9"


async def test_budget_stops_the_run(pipeline: Pipeline) -> None:
    script(pipeline, "judge", ["thinking"])  # 0.003 a call
    agents = spec(
        agents=[{"name": "j", "member": "judge"}],
        termination={"budget_usd": "0.007"},
        detectors={"enabled": False},
    )
    state = await run_agents(pipeline, agents, "go")
    assert len(state.steps) == 3 and state.cost_usd == Decimal("0.009")
    assert "budget" in state.reason


async def test_failing_member_is_retried_then_dropped_and_recorded(pipeline: Pipeline) -> None:
    agents = spec(
        agents=[
            {"name": "shaky", "member": "flaky"},
            {"name": "dead", "member": "broken"},
            {"name": "ok", "member": "orders"},
        ],
        protocol={"kind": "sequential"},
        on_failure={"retries": 1, "then": "drop"},
    )
    state = await run_agents(pipeline, agents, "status of order 1042?")
    statuses = [(s.agent, s.status) for s in state.steps]
    assert statuses == [
        ("shaky", "failed"),
        ("shaky", "ok"),
        ("dead", "failed"),
        ("dead", "failed"),
        ("ok", "ok"),
    ]
    assert state.dropped == ["dead"]
    assert any(e.code == "member_failed" and e.agents == ["dead"] for e in state.events)
    rows = ledger_rows(ledger_path(pipeline), f"tags LIKE '%{state.id}%'")
    assert [r["status"] for r in rows] == [502, 200, 502, 502, 200]
    assert "1042" in state.posts[-1].text


async def test_failing_member_can_stop_the_run(pipeline: Pipeline) -> None:
    agents = spec(
        agents=[{"name": "dead", "member": "broken"}],
        protocol={"kind": "sequential"},
        on_failure={"retries": 0, "then": "stop"},
    )
    state = await run_agents(pipeline, agents, "x")
    assert state.status == "failed" and "'dead' failed 1 times" in state.reason


async def test_oversized_post_fails_the_run_with_the_limit(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["x" * 100])
    agents = spec(
        agents=[{"name": "a", "member": "alice"}],
        protocol={"kind": "sequential"},
        blackboard={"max_message_chars": 50},
    )
    state = await run_agents(pipeline, agents, "talk")
    assert state.status == "failed"
    assert "100 characters; the blackboard limit is 50" in state.reason
    assert len(ledger_rows(ledger_path(pipeline), f"tags LIKE '%{state.id}%'")) == 1


async def test_cancelled_run_keeps_its_steps_and_resumes(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    cancel: list[asyncio.Task[Any]] = []
    calls = iter(range(1, 100))

    def respond(_request: Request) -> str:
        if next(calls) == 3:  # the third step is in flight when the run is cancelled
            cancel[0].cancel()
        return "step"

    old = pipeline.members["alice"]
    pipeline.members["alice"] = ScriptedMember.of("alice", respond, price=old.price)
    agents = spec(
        agents=[{"name": "a", "member": "alice"}],
        termination={"max_steps": 5},
        detectors={"enabled": False},
    )
    store = LedgerRunStore(pipeline.ledger)
    runner = AgentRunner(pipeline, store)
    state = await runner.start(agents, "count")
    cancel.append(asyncio.create_task(runner.run(state)))
    with pytest.raises(asyncio.CancelledError):
        await cancel[0]
    saved = await store.load(state.id)
    assert saved.status == "cancelled"
    assert [s.status for s in saved.steps] == ["ok", "ok", "cancelled"]  # the third in flight
    resumed = await AgentRunner(pipeline, store).resume(state.id)
    assert resumed.status == "completed" and len(resumed.steps) == 5
    rows = {
        r["request_id"] for r in ledger_rows(ledger_path(pipeline), f"tags LIKE '%{state.id}%'")
    }
    assert {s.request_id for s in resumed.steps if s.status == "ok"} <= rows  # every step booked
    assert rows <= {s.request_id for s in resumed.steps}  # no request the run does not know
    with pytest.raises(NotFound):
        await store.load("run_nope")


async def test_human_termination_through_the_review_queue(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["answer: 41"])
    agents = spec(
        agents=[{"name": "a", "member": "alice"}],
        termination={"max_steps": 50, "human": {"after_steps": 2}},
        detectors={"enabled": False},
    )
    runner = AgentRunner(pipeline)
    state = await runner.run(await runner.start(agents, "meaning of life?"))
    assert state.status == "awaiting_review" and state.review_id
    assert (await runner.resume(state.id)).status == "awaiting_review"  # nobody decided yet
    await pipeline.reviews.override(state.review_id, "ada", "42", "off by one")
    done = await runner.resume(state.id)
    assert done.status == "completed" and done.answer == "42"
    assert "decided by ada" in done.reason and len(done.steps) == 2


async def test_detector_policy_stops_on_step_repetition(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["same old"])
    agents = spec(
        agents=[{"name": "a", "member": "alice"}],
        termination={"max_steps": 50},
        detectors={"policy": {"FM-1.3": "stop"}},
    )
    state = await run_agents(pipeline, agents, "same old task")
    assert state.status == "stopped" and state.reason.startswith("FM-1.3 step repetition")
    assert len(state.steps) == 3
    audit = [r.kind for r in await pipeline.ledger.audit(state.id)]
    assert "agents.event" in audit


async def test_detector_policy_hands_lost_diversity_to_review(pipeline: Pipeline) -> None:
    script(pipeline, "alice", ["we agree on everything"])
    script(pipeline, "bob", ["we agree on everything"])
    agents = spec(
        agents=[{"name": "a", "member": "alice"}, {"name": "b", "member": "bob"}],
        termination={"max_steps": 50},
        detectors={"policy": {"FM-1.2": "review"}},
    )
    state = await run_agents(pipeline, agents, "everything we agree on")
    assert state.status == "awaiting_review" and "FM-1.2" in state.reason
    review = await pipeline.reviews.get(state.review_id or "")
    assert review.prompt == "everything we agree on"


def test_personas_and_theory_of_mind_change_the_prompt_only_when_on() -> None:
    from pinfactory.agents.blackboard import Blackboard, Post
    from pinfactory.agents.prompts import agent_messages
    from pinfactory.agents.spec import SwitchesSpec

    board = Blackboard(1000, 100)
    board.add(Post(step=-1, agent="task", kind="task", text="guess"))
    board.add(Post(step=0, agent="b", kind="message", text="answer: 12"))
    agent = AgentSpec(name="a", member="alice", persona="a bold pirate")
    plain = agent_messages(agent, board, SwitchesSpec(personas=False), 4)
    both = agent_messages(agent, board, SwitchesSpec(personas=True, theory_of_mind=True), 4)
    assert "pirate" not in plain[0].content and "pirate" in both[0].content
    assert "b said 12" in both[1].content and "b said 12" not in plain[1].content


async def test_agent_steps_pass_verification_and_routing(pipeline: Pipeline) -> None:
    """``auto`` agents are routed per step like any request."""
    script(pipeline, "alice", ["from alice"])
    script(pipeline, "bob", ["from bob"])
    agents = spec(agents=[{"name": "a", "member": "auto"}], protocol={"kind": "sequential"})
    state = await run_agents(pipeline, agents, "please sum 2 and 3")
    assert state.steps[0].member == "bob"  # the 'sums' rule, not the fallback
    assert pipeline.decide(Request.from_text("please sum")).member == "bob"


async def test_a_failing_tool_is_reported_to_its_agent_not_dropped(pipeline: Pipeline) -> None:
    """Bad input: a member that fails as a tool is retried, recorded, and the agent goes on."""
    script(pipeline, "alice", ["CALL broken: 2 + 2", "answer: 4"])
    agents = spec(
        agents=[{"name": "a", "member": "alice", "tools": ["broken"]}],
        termination={"max_steps": 4},
        on_failure={"retries": 1, "then": "drop"},
        detectors={"enabled": False},
    )
    state = await run_agents(pipeline, agents, "add")
    assert [(s.member, s.kind, s.status) for s in state.steps] == [
        ("alice", "agent", "ok"),
        ("broken", "tool", "failed"),
        ("broken", "tool", "failed"),
        ("alice", "agent", "ok"),
    ]
    assert state.dropped == [] and state.answer == "4"
    assert [e.code for e in state.events] == ["tool_failed"]
    rows = ledger_rows(ledger_path(pipeline), f"tags LIKE '%{state.id}%'")
    assert [r["status"] for r in rows] == [200, 502, 502, 200]


async def test_a_long_run_raises_nothing_until_it_drifts(pipeline: Pipeline) -> None:
    """Hundreds of healthy steps raise no event; the first repeated steps stop the run."""
    healthy = 300
    turns = iter(range(1, 1000))

    def respond(_request: Request) -> str:
        i = next(turns)
        if i > healthy:  # drift: the same step again and again
            return "estimate: the warehouse count is unchanged"
        return f"estimate {i}: the warehouse count is {i * 7} after shelf {i % 13}"

    old = pipeline.members["alice"]
    pipeline.members["alice"] = ScriptedMember.of("alice", respond, price=old.price)
    agents = spec(
        agents=[{"name": "a", "member": "alice"}, {"name": "b", "member": "alice"}],
        termination={"max_steps": 600},
        detectors={"policy": {"FM-1.3": "stop", "FM-1.2": "stop"}},
    )
    state = await run_agents(pipeline, agents, "Estimate the warehouse count together.")
    assert state.status == "stopped", state.reason
    assert state.events[0].step >= healthy  # not one false alarm before the drift
    assert state.events[-1].code in ("FM-1.2", "FM-1.3")
    assert len(state.steps) < healthy + 8


async def test_every_step_carries_a_sampling_seed_from_the_run_seed(pipeline: Pipeline) -> None:
    """Sampling members (an ensemble at temperature 0.8) replay under the run's seed."""
    seen: list[object] = []

    def respond(request: Request) -> str:
        seen.append(request.params.get("seed"))
        return "answer: 1"

    old = pipeline.members["alice"]
    pipeline.members["alice"] = ScriptedMember.of("alice", respond, price=old.price)
    agents = spec(
        agents=[
            {"name": "a", "member": "alice", "temperature": 0.8},
            {"name": "b", "member": "alice"},
        ],
        protocol={"kind": "sequential"},
    )
    await run_agents(pipeline, agents, "one?", seed=3)
    await run_agents(pipeline, agents, "one?", seed=3)
    await run_agents(pipeline, agents, "one?", seed=4)
    assert all(isinstance(s, int) for s in seen)
    assert seen[0:2] == seen[2:4] and seen[0] != seen[1]  # same run seed, same step seeds
    assert seen[4:6] != seen[0:2]
