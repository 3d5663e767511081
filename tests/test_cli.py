"""The pinfactory command, run in-process through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pinfactory.cli import app

runner = CliRunner()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commands use the default ledger, pinfactory-ledger.db in the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PINFACTORY_LEDGER", raising=False)
    return tmp_path


def test_ask_json_prints_the_full_response(in_tmp: Path) -> None:
    result = runner.invoke(app, ["ask", "What is 12 times 7?", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["choices"][0]["message"]["content"].endswith("= 84")
    assert body["pinfactory"]["member"] == "calculator"
    assert set(body["pinfactory"]) >= {"member", "reason", "cost_usd", "latency_ms", "request_id"}
    assert (in_tmp / "pinfactory-ledger.db").exists()


def test_ask_prints_member_reason_and_cost(in_tmp: Path) -> None:
    result = runner.invoke(app, ["ask", "status of order 1042"])
    assert result.exit_code == 0, result.output
    assert "shipped" in result.output
    assert "member orders" in result.output
    assert "rule 'order-status' matched" in result.output


def test_costs_reads_the_same_default_ledger(in_tmp: Path) -> None:
    assert runner.invoke(app, ["ask", "2 + 2"]).exit_code == 0
    assert runner.invoke(app, ["ask", "order 1001"]).exit_code == 0
    result = runner.invoke(app, ["costs", "--json"])
    assert result.exit_code == 0, result.output
    spend = json.loads(result.stdout)
    members = {row["key"]: row for row in spend["member"]}
    assert members["calculator"]["requests"] == 1
    assert members["orders"]["cost_usd"] == "0.000002"
    assert spend["unit"][0]["key"] == "cli"


def test_team_check_accepts_the_default_team(tmp_path: Path) -> None:
    from pinfactory.team import default_team_path

    result = runner.invoke(app, ["team", "check", str(default_team_path())])
    assert result.exit_code == 0, result.output
    assert "frontier" in result.output and "off" in result.output


def test_team_check_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("members:\n  - name: x\n    kind: nope\nrouting: {fallback: x}\n")
    result = runner.invoke(app, ["team", "check", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml:3: members.0.kind: unknown member kind 'nope'" in result.output
    assert "Traceback" not in result.output
