"""Agents call tools through OpenAI tool calling, end to end over loopback.

A tool-capable ``openai_http`` member talks to a recording upstream (a real HTTP server)
that answers with scripted ``tool_calls``; the run goes through the gateway's
``/v1/agents/runs``. A member without the capability keeps the ``CALL`` text fallback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinfactory.agents import parse_agents
from pinfactory.agents.tools import text_calls, tool_calls_of
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.members.base import Completion, Usage
from pinfactory.team import parse_team
from pinfactory.testing.recording import RecordingUpstream, Scripted, completion
from tests.conftest import ledger_rows

SOLVER: dict[str, Any] = {
    "name": "tooled",
    "agents": [{"name": "solver", "member": "frontier", "tools": ["calculator", "orders"]}],
    "protocol": {"kind": "sequential"},
}


def calls(*made: tuple[str, str, str]) -> Scripted:
    """An upstream answer asking for tool calls: (id, tool name, arguments JSON)."""
    body = completion(None)
    body["choices"][0]["finish_reason"] = "tool_calls"
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": i, "type": "function", "function": {"name": name, "arguments": arguments}}
        for i, name, arguments in made
    ]
    return Scripted(body)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[RecordingUpstream, str]]:
    recorder = RecordingUpstream()
    with serve_in_thread(recorder.app()) as url:
        yield recorder, url


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path_factory.mktemp("agents-tools") / "ledger.db"
    team = parse_team(
        f"""\
name: tooled
members:
  - {{name: frontier, kind: openai_http, price: {{per_call: 0.01}},
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
  - {{name: small, kind: "pinfactory.testing.scripted:ScriptedMember",
      settings: {{replies: ["CALL calculator: 6 * 7"]}}}}
  - {{name: calculator, kind: calculator, tier: tool, price: {{per_call: 0.001}}}}
  - {{name: orders, kind: orders, tier: tool}}
routing: {{kind: rules, fallback: frontier}}
""",
        "tooled.yaml",
        {"PINFACTORY_LEDGER": str(ledger)},
    )
    with serve_in_thread(create_app(team)) as url:
        yield url, ledger


@pytest.fixture
def recorder(upstream: tuple[RecordingUpstream, str]) -> RecordingUpstream:
    upstream[0].reset()
    return upstream[0]


def run(url: str, agents: dict[str, Any], task: str) -> dict[str, Any]:
    with httpx.Client(base_url=url) as client:
        started = client.post("/v1/agents/runs", json={"agents": agents, "task": task})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        for _ in range(400):
            status: dict[str, Any] = client.get(f"/v1/agents/runs/{run_id}").json()
            if status["status"] != "running":
                status["result"] = client.get(f"/v1/agents/runs/{run_id}/result").json()
                return status
            time.sleep(0.05)
    raise AssertionError("the run did not end")


def test_tool_calls_run_as_booked_steps_and_go_back_as_tool_messages(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    url, ledger = gateway
    recorder.answer(
        calls(
            ("call_1", "calculator", json.dumps({"input": "12 * 7"})),
            ("call_2", "orders", json.dumps({"input": "order 1042"})),
        )
    )
    recorder.answer(Scripted(completion("answer: 84")))
    status = run(url, SOLVER, "What is 12 times 7, and where is order 1042?")
    assert status["status"] == "completed" and status["answer"] == "84"
    steps = [(s["agent"], s["kind"], s["member"], s["status"]) for s in status["data"]]
    assert steps == [
        ("solver", "agent", "frontier", "ok"),
        ("solver", "tool", "calculator", "ok"),
        ("solver", "tool", "orders", "ok"),
        ("solver", "agent", "frontier", "ok"),
    ]
    assert [s["tool_call_id"] for s in status["data"]] == ["", "call_1", "call_2", ""]

    first, second = recorder.bodies
    offered = [t["function"]["name"] for t in first["tools"]]
    assert offered == ["calculator", "orders"] and first["tool_choice"] == "auto"
    assert first["tools"][0]["function"]["parameters"]["required"] == ["input"]
    assert "CALL" not in first["messages"][0]["content"]  # no text convention when offered
    asked, calc, order = second["messages"][-3:]
    assert asked["role"] == "assistant" and [c["id"] for c in asked["tool_calls"]] == [
        "call_1",
        "call_2",
    ]
    assert calc == {"role": "tool", "tool_call_id": "call_1", "content": "12 * 7 = 84"}
    assert order["tool_call_id"] == "call_2" and "1042" in order["content"]

    posts = [(p["agent"], p["kind"]) for p in status["result"]["posts"]]
    assert posts == [("task", "task"), ("calculator", "tool"), ("orders", "tool"),
                     ("solver", "message")]  # fmt: skip
    rows = ledger_rows(ledger, f"tags LIKE '%{status['id']}%'")
    assert [r["request_id"] for r in rows] == [s["request_id"] for s in status["data"]]
    assert [r["member"] for r in rows] == ["frontier", "calculator", "orders", "frontier"]
    assert all(r["status"] == 200 for r in rows)
    assert status["result"]["cost_usd"] == pytest.approx(0.021)  # 0.01 + 0.001 + 0 + 0.01


def test_a_call_the_agent_may_not_make_is_answered_with_an_error_not_run(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    url, ledger = gateway
    recorder.answer(
        calls(
            ("c1", "shell", json.dumps({"input": "rm -rf /"})),
            ("c2", "calculator", "{not json"),
        )
    )
    recorder.answer(Scripted(completion("answer: none")))
    status = run(url, SOLVER, "do something")
    assert [s["kind"] for s in status["data"]] == ["agent", "agent"]  # nothing ran
    refused = [e for e in status["events"] if e["code"] == "tool_call_refused"]
    details = [e["detail"][:22] for e in refused]
    assert details == ["unknown tool 'shell'; ", "arguments are not JSON"]
    replies = recorder.bodies[1]["messages"][-2:]
    assert replies[0]["content"].startswith("error: unknown tool 'shell'; allowed: calculator")
    assert replies[1]["content"].startswith("error: arguments are not JSON")
    assert len(ledger_rows(ledger, f"tags LIKE '%{status['id']}%'")) == 2


def test_tool_rounds_end_with_tool_choice_none(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    url, _ = gateway
    agents = {**SOLVER, "agents": [{**SOLVER["agents"][0], "tool_rounds": 2}]}
    for i in range(3):
        recorder.answer(calls((f"c{i}", "calculator", json.dumps({"input": "1 + 1"}))))
    status = run(url, agents, "keep adding")
    choices = [b["tool_choice"] for b in recorder.bodies]
    assert choices == ["auto", "auto", "none"]
    assert [s["kind"] for s in status["data"]] == ["agent", "tool", "agent", "tool", "agent"]


def test_a_member_without_tool_capability_keeps_the_text_fallback(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    url, ledger = gateway
    agents = {**SOLVER, "agents": [{"name": "small", "member": "small", "tools": ["calculator"]}]}
    status = run(url, agents, "What is 6 times 7?")
    assert [(s["member"], s["kind"]) for s in status["data"]] == [
        ("small", "agent"),
        ("calculator", "tool"),
    ]
    assert status["result"]["posts"][-1]["text"] == "6 * 7 = 42"
    assert recorder.bodies == []  # the tool-capable upstream was never asked
    assert len(ledger_rows(ledger, f"tags LIKE '%{status['id']}%' AND status = 200")) == 2


def test_parsing_calls_from_an_answer_and_from_text() -> None:
    spec = parse_agents(SOLVER, "test")
    assert spec.agents[0].tool_rounds == 3
    assert tool_calls_of(Completion("x", Usage(), Decimal(0), "m"), ["calculator"]) == []
    found = text_calls("CALL Calculator: 2 + 2\nCALL shell: ls\nanswer: 4", ["calculator"])
    assert [(c.name, c.input) for c in found] == [("calculator", "2 + 2")]
