"""``/v1/agents/runs`` on a real server over loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from tests.agents.conftest import scripted_team
from tests.conftest import ledger_rows

AGENTS: dict[str, Any] = {
    "name": "pair",
    "agents": [
        {"name": "reader", "member": "alice", "tools": ["calculator"]},
        {"name": "echo", "member": "bob"},
    ],
    "protocol": {"kind": "sequential"},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path_factory.mktemp("agents-api") / "ledger.db"
    with serve_in_thread(create_app(scripted_team(ledger))) as url:
        yield url, ledger


def wait(client: httpx.Client, run_id: str) -> dict[str, Any]:
    for _ in range(200):
        body: dict[str, Any] = client.get(f"/v1/agents/runs/{run_id}").json()
        if body["status"] not in ("running",):
            return body
        time.sleep(0.05)
    raise AssertionError("the run did not end")


def test_start_poll_and_fetch_the_result(served: tuple[str, Path]) -> None:
    url, ledger = served
    with httpx.Client(base_url=url) as client:
        started = client.post("/v1/agents/runs", json={"agents": AGENTS, "task": "What is 2+3?"})
        assert started.status_code == 202
        run_id = started.json()["id"]
        status = wait(client, run_id)
        assert status["status"] == "completed"
        assert [s["agent"] for s in status["data"]] == ["reader", "echo"]
        result = client.get(f"/v1/agents/runs/{run_id}/result").json()
        assert result["posts"][0] == {**result["posts"][0], "kind": "task", "text": "What is 2+3?"}
    rows = ledger_rows(ledger, f"tags LIKE '%{run_id}%'")
    assert [r["request_id"] for r in rows] == [s["request_id"] for s in status["data"]]
    assert result["cost_usd"] == pytest.approx(sum(r["cost_nusd"] for r in rows) * 1e-9)


@pytest.mark.parametrize(
    ("body", "status", "param", "says"),
    [
        ({"agents": {**AGENTS, "agents": []}, "task": "x"}, 400, "agents", "at least 1"),
        (
            {"agents": {**AGENTS, "agents": [{"name": "a", "member": "gpt-9"}]}, "task": "x"},
            400,
            "agents",
            "unknown member 'gpt-9'; allowed: auto, alice",
        ),
        (
            {"agents": {**AGENTS, "protocol": {"kind": "round_robin"}}, "task": "x"},
            400,
            "agents",
            "can run forever",
        ),
        ({"agents": AGENTS, "task": ""}, 400, "task", "non-empty"),
        ({"agents": AGENTS, "task": "x", "seed": "one"}, 400, "seed", "integer"),
        ({"agents": "file.yaml", "task": "x"}, 400, "agents", "JSON object"),
        (
            {"agents": {**AGENTS, "blackboard": {"max_message_chars": 16}}, "task": "y" * 40},
            413,
            "blackboard.max_message_chars",
            "the blackboard limit is 16",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx_and_recorded(
    served: tuple[str, Path], body: dict[str, Any], status: int, param: str, says: str
) -> None:
    url, ledger = served
    with httpx.Client(base_url=url) as client:
        answer = client.post("/v1/agents/runs", json=body, headers={"x-request-id": f"bad-{param}"})
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["param"] == param and says in error["message"]
    assert ledger_rows(ledger, f"request_id = 'bad-{param}' AND status = {status}")


def test_unknown_runs_and_results_not_ready(served: tuple[str, Path]) -> None:
    url, _ = served
    with httpx.Client(base_url=url) as client:
        missing = client.get("/v1/agents/runs/run_0123")
        assert missing.status_code == 404 and "no agents run" in missing.json()["error"]["message"]
        slow = {**AGENTS, "termination": {"human": {"after_steps": 1}}}
        run_id = client.post("/v1/agents/runs", json={"agents": slow, "task": "t"}).json()["id"]
        assert wait(client, run_id)["status"] == "awaiting_review"
        early = client.get(f"/v1/agents/runs/{run_id}/result")
        assert early.status_code == 409 and "awaiting_review" in early.json()["error"]["message"]
        resumed = client.post(f"/v1/agents/runs/{run_id}/resume")
        assert resumed.status_code == 202
        assert wait(client, run_id)["status"] == "awaiting_review"


def test_cancel_half_way_then_resume(tmp_path: Path) -> None:
    """A step stuck on a slow upstream is cancelled; the run is resumable and stays so."""
    from pinfactory.team import parse_team
    from pinfactory.testing.upstreams import misbehaving_upstream

    with serve_in_thread(misbehaving_upstream(slow_s=3)) as upstream:
        team_file = (
            "members:\n"
            "  - {name: calculator, kind: calculator, tier: tool}\n"
            "  - name: slowpoke\n    kind: openai_http\n    timeout_s: 60\n"
            f"    settings: {{base_url: '{upstream}/v1', model: slow}}\n"
            "routing: {kind: rules, fallback: calculator}\n"
            f"ledger: {{path: '{tmp_path / 'ledger.db'}'}}\n"
        )
        team = parse_team(team_file, "slow.yaml", {})
        agents = {
            "agents": [
                {"name": "calc", "member": "calculator"},
                {"name": "s", "member": "slowpoke"},
            ],
            "protocol": {"kind": "sequential"},
        }
        with serve_in_thread(create_app(team)) as url, httpx.Client(base_url=url) as client:
            run_id = client.post("/v1/agents/runs", json={"agents": agents, "task": "2+2"}).json()[
                "id"
            ]
            for _ in range(200):
                if client.get(f"/v1/agents/runs/{run_id}").json()["steps"] >= 1:
                    break
                time.sleep(0.05)
            cancelled = client.post(f"/v1/agents/runs/{run_id}/cancel").json()
            assert cancelled["status"] == "cancelled"
            steps = client.get(f"/v1/agents/runs/{run_id}").json()["data"]
            assert [(s["agent"], s["status"]) for s in steps] == [
                ("calc", "ok"),
                ("s", "cancelled"),
            ]
            assert client.post(f"/v1/agents/runs/{run_id}/resume").status_code == 202
            again = client.post(f"/v1/agents/runs/{run_id}/cancel").json()
            assert again["status"] == "cancelled"
    rows = ledger_rows(tmp_path / "ledger.db", f"tags LIKE '%{run_id}%' AND status = 200")
    assert [r["member"] for r in rows] == ["calculator"]
