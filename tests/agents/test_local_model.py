"""A short run on the real local model (Gemma 3 270M) and the real calculator, through
the default team's pipeline, and the command line with its live progress."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from typer.testing import CliRunner

from pinfactory.agents import parse_agents, run_agents
from pinfactory.cli import app
from pinfactory.pipeline import open_pipeline
from tests.conftest import default_team, ledger_rows


async def test_two_local_agents_and_a_tool(tmp_path: Path) -> None:
    team = default_team(tmp_path / "ledger.db")
    spec = parse_agents(
        {
            "agents": [
                {"name": "guesser", "member": "local", "max_tokens": 8},
                {"name": "calc", "member": "calculator"},
                {
                    "name": "checker",
                    "member": "local",
                    "max_tokens": 8,
                    "persona": "A sceptical auditor.",
                },
            ],
            "protocol": {"kind": "sequential"},
        },
        "test",
    )
    async with open_pipeline(team) as pipeline:
        state = await run_agents(pipeline, spec, "What is 6 times 7?")
    assert [s.member for s in state.steps] == ["local", "calculator", "local"]
    assert all(s.status == "ok" and s.output_tokens > 0 for s in state.steps)
    assert state.steps[0].input_tokens > 10
    assert state.cost_usd > 0
    rows = ledger_rows(tmp_path / "ledger.db", f"tags LIKE '%{state.id}%'")
    assert len(rows) == 3 and sum(r["cost_nusd"] for r in rows) * 1e-9 > 0


def test_cli_run_shows_each_step_and_the_cost(tmp_path: Path) -> None:
    agents = tmp_path / "agents.yaml"
    agents.write_text(
        "protocol: {kind: sequential}\n"
        "agents:\n  - {name: calc, member: calculator}\n  - {name: orders, member: orders}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PINFACTORY_LEDGER": str(tmp_path / "ledger.db")}
    result = CliRunner().invoke(
        app, ["agents", "run", str(agents), "--task", "12 times 7"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "calc -> calculator: 12 * 7 = 84" in result.output
    assert "completed" in result.output and "the protocol ended" in result.output
    found = re.search(r"run (run_[0-9a-f]+)", result.output)
    assert found is not None
    shown = CliRunner().invoke(app, ["agents", "show", found.group(1), "--json"], env=env)
    body = json.loads(shown.output)
    assert body["status"] == "completed" and body["steps"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents:\n  - {name: a, member: nobody}\n", encoding="utf-8")
    refused = CliRunner().invoke(app, ["agents", "run", str(bad), "--task", "x"], env=env)
    assert refused.exit_code == 1
    assert "agents.0.member: unknown member 'nobody'" in refused.output
