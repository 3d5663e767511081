"""The cost simulator on the shipped example log and on a real SQLite ledger."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.errors import DatasetError
from pinfactory.lab.simulate import simulate
from pinfactory.ledger.base import LedgerEntry
from pinfactory.ledger.sqlite import SQLiteLedger

REPO = Path(__file__).resolve().parents[2]

EXAMPLES = REPO / "lab" / "examples"


def test_example_log_is_cheaper_under_the_tiered_policy() -> None:
    report = simulate(EXAMPLES / "request_log.csv", EXAMPLES / "tiered-team.yaml")
    assert report.requests == 300
    assert report.cost_policy < report.cost_as_run
    assert sum(m.share for m in report.members) == pytest.approx(1.0)
    assert {m.member for m in report.members} <= {"local", "mini", "frontier"}
    assert report.quality_as_run == 1.0  # everything went to the general frontier model
    assert report.quality_policy is not None and report.quality_policy <= 1.0


def test_cli_prints_json() -> None:
    args = [
        "simulate",
        "--log",
        str(EXAMPLES / "request_log.csv"),
        "--policy",
        str(EXAMPLES / "tiered-team.yaml"),
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert Decimal(data["cost_policy_usd"]) < Decimal(data["cost_as_run_usd"])
    assert sum(data["tier_shares"].values()) == pytest.approx(1.0)


async def test_prices_the_gateway_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SQLiteLedger(str(path))
    await ledger.open()
    for i, (unit, cost) in enumerate([("support", "0.002"), ("support", "0.003"), ("ops", "0.5")]):
        await ledger.record(
            LedgerEntry(
                f"r{i}",
                unit,
                "u",
                "auto",
                "frontier",
                "rules",
                None,
                1000,
                200,
                Decimal(cost),
                5.0,
                200,
            )
        )
    await ledger.close()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        (EXAMPLES / "tiered-team.yaml").read_text()
        + "    - name: support-to-mini\n      priority: 200\n      when: {unit: [support]}\n"
        + "      route: mini\n"
    )
    report = simulate(path, policy)
    assert report.cost_as_run == Decimal("0.505")
    shares = {m.member: m.requests for m in report.members}
    assert shares == {"mini": 2, "frontier": 1}
    # mini: 1000 in at 0.15/M + 200 out at 0.60/M = 0.00027 each; frontier 0.0025 + 0.002
    assert report.cost_policy == Decimal("0.00027") * 2 + Decimal("0.0045")


def test_unpriced_model_is_a_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("prompt,input_tokens,output_tokens,model\nhi,10,10,mystery\n")
    with pytest.raises(DatasetError, match="model 'mystery' has no cost_usd"):
        simulate(log, EXAMPLES / "tiered-team.yaml")
    log.write_text("prompt,input_tokens,output_tokens,model\nhi,ten,10,frontier\n")
    with pytest.raises(DatasetError, match="row 2: input_tokens 'ten' is not an integer"):
        simulate(log, EXAMPLES / "tiered-team.yaml")
