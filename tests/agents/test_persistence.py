"""Runs outlive the process: checkpoints in the ledger (SQLite and PostgreSQL), a gateway
restart resumes the runs it interrupted, the CLI resumes an API run, and a unit never
sees another unit's run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from pinfactory.agents import LedgerRunStore, RunState, parse_agents
from pinfactory.cli import app
from pinfactory.errors import NotFound
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import open_ledger
from pinfactory.team import parse_team
from pinfactory.testing.upstreams import misbehaving_upstream
from tests.ledger.conftest import location, pg_location  # noqa: F401  (fixtures)

SALES = {"authorization": "Bearer sk-sales-0001"}
SUPPORT = {"authorization": "Bearer sk-support-0002"}
AGENTS: dict[str, Any] = {
    "agents": [
        {"name": "calc", "member": "calculator"},
        {"name": "s", "member": "slowpoke"},
        {"name": "calc2", "member": "calculator"},
    ],
    "protocol": {"kind": "sequential"},
}


def team_text(upstream: str) -> str:
    return (
        "name: restartable\n"
        "members:\n"
        "  - {name: calculator, kind: calculator, tier: tool}\n"
        "  - name: slowpoke\n    kind: openai_http\n    timeout_s: 60\n"
        f"    settings: {{base_url: '{upstream}/v1', model: slow}}\n"
        "routing: {kind: rules, fallback: calculator}\n"
        "keys:\n"
        "  - {key: sk-sales-0001, unit: sales}\n"
        "  - {key: sk-support-0002, unit: support}\n"
    )


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[str]:
    with serve_in_thread(misbehaving_upstream(slow_s=1.5)) as url:
        yield url


def stored(where: str, run_id: str) -> RunState:
    async def load() -> RunState:
        ledger = open_ledger(where)
        await ledger.open()
        try:
            return await LedgerRunStore(ledger).load(run_id)
        finally:
            await ledger.close()

    return asyncio.run(load())


def wait_for(client: httpx.Client, run_id: str, done: Any) -> dict[str, Any]:
    for _ in range(600):
        body: dict[str, Any] = client.get(f"/v1/agents/runs/{run_id}", headers=SALES).json()
        if done(body):
            return body
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never got there: {body}")


def interrupted_run(team_file: str, where: str) -> str:
    """Start a run as 'sales', stop the gateway while its slow step is in flight."""
    team = parse_team(team_file, "restartable.yaml", {"PINFACTORY_LEDGER": where})
    with serve_in_thread(create_app(team)) as url, httpx.Client(base_url=url) as client:
        started = client.post(
            "/v1/agents/runs", json={"agents": AGENTS, "task": "2+2"}, headers=SALES
        )
        assert started.status_code == 202, started.text
        run_id = str(started.json()["id"])
        wait_for(client, run_id, lambda body: body["steps"] >= 1)
        for path in ("", "/result"):  # another unit: as if the run did not exist
            hidden = client.get(f"/v1/agents/runs/{run_id}{path}", headers=SUPPORT)
            assert hidden.status_code == 404, hidden.text
            assert hidden.json()["error"]["param"] == "run_id"
        for path in ("/cancel", "/resume"):
            hidden = client.post(f"/v1/agents/runs/{run_id}{path}", headers=SUPPORT)
            assert hidden.status_code == 404
        busy = client.post(f"/v1/agents/runs/{run_id}/resume", headers=SALES)
        assert busy.status_code == 409 and "is running here" in busy.json()["error"]["message"]
    return run_id


def test_a_gateway_restart_resumes_the_runs_it_interrupted(
    slow_upstream: str,
    location: str,  # noqa: F811
) -> None:
    team_file = team_text(slow_upstream)
    run_id = interrupted_run(team_file, location)
    saved = stored(location, run_id)
    assert saved.status == "interrupted" and saved.unit == "sales"
    assert [(s.agent, s.status) for s in saved.steps] == [("calc", "ok"), ("s", "cancelled")]

    team = parse_team(team_file, "restartable.yaml", {"PINFACTORY_LEDGER": location})
    with serve_in_thread(create_app(team)) as url, httpx.Client(base_url=url) as client:
        done = wait_for(client, run_id, lambda body: body["status"] != "running")
        assert done["status"] == "completed", done
        assert [(s["agent"], s["status"]) for s in done["data"]] == [
            ("calc", "ok"),
            ("s", "cancelled"),
            ("s", "ok"),
            ("calc2", "ok"),
        ]
        result = client.get(f"/v1/agents/runs/{run_id}/result", headers=SALES).json()
        assert [p["agent"] for p in result["posts"]] == ["task", "calc", "s", "calc2"]
        assert result["posts"][1]["text"] == "2 + 2 = 4"


def test_the_cli_resumes_a_run_the_api_started(slow_upstream: str, tmp_path: Path) -> None:
    where = str(tmp_path / "ledger.db")
    team_file = team_text(slow_upstream)
    run_id = interrupted_run(team_file, where)
    path = tmp_path / "team.yaml"
    path.write_text(team_file, encoding="utf-8")
    env = {"PINFACTORY_LEDGER": where}
    resumed = CliRunner().invoke(
        app, ["agents", "resume", run_id, "--team", str(path), "--json"], env=env
    )
    assert resumed.exit_code == 0, resumed.output
    assert stored(where, run_id).status == "completed"
    command = ["agents", "show", run_id, "--team", str(path), "--json"]
    shown = json.loads(CliRunner().invoke(app, command, env=env).output)
    assert shown["status"] == "completed" and shown["steps"] == 4
    missing = CliRunner().invoke(app, ["agents", "show", "run_nope", "--team", str(path)], env=env)
    assert missing.exit_code == 1 and "no agents run 'run_nope'" in missing.output


async def test_claims_hand_each_run_to_one_caller(location: str) -> None:  # noqa: F811
    ledger = open_ledger(location)
    await ledger.open()
    try:
        store = LedgerRunStore(ledger)
        spec = parse_agents({"agents": [{"name": "a", "member": "x"}]}, "test")
        states = [
            RunState(spec=spec, task="t", seed=0, switches=spec.switches, status="interrupted")
            for _ in range(6)
        ]
        for state in states:
            await store.save(state)
        await store.save(states[0].model_copy(update={"status": "completed"}))
        first, second = await asyncio.gather(store.claim("interrupted"), store.claim("interrupted"))
        claimed = [s.id for s in first + second]
        assert sorted(claimed) == sorted(s.id for s in states[1:])  # each once, none finished
        assert (await store.load(states[1].id)).id == states[1].id
        assert await store.claim("interrupted") == []
        with pytest.raises(NotFound):
            await store.load("run_absent")
    finally:
        await ledger.close()
