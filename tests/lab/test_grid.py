"""The shipped grids, quick variants, through the CLI: processes, resume, report, Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.lab.experiment import run_grid
from pinfactory.lab.grid import cells, load_grid, run_cell

REPO = Path(__file__).resolve().parents[2]

GRIDS = REPO / "lab" / "grids"


@pytest.fixture(autouse=True)
def _data(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINFACTORY_DATA", str(shared_data))


@pytest.mark.parametrize("grid", sorted(p.name for p in GRIDS.glob("*.yaml")))
def test_quick_grid_runs_resumes_and_reports(grid: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["lab", "run", str(GRIDS / grid), "--out", str(out), "--quick", "--workers", "2"]
    result = CliRunner().invoke(app, [*args, "--json"])  # for machines: no width, no wrapping
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)
    assert first["already"] == 0 and first["ran"] == first["cells"] > 0
    rows = pd.read_csv(out / "results.csv")
    assert {"oracle", "best_single", "random"} <= set(rows["router"])
    for column in (
        "dataset",
        "router",
        "train_size",
        "seed",
        "accuracy",
        "quality",
        "cost_usd",
        "aiq",
    ):
        assert column in rows.columns
    oracle = rows[rows["router"] == "oracle"].iloc[0]
    assert oracle["accuracy"] == 1.0
    assert (rows["quality"] <= oracle["quality"] + 1e-12).all()  # nothing beats reading the answers
    report = (out / "report.md").read_text()
    assert "## " in report and list(out.glob("*.png"))
    again = CliRunner().invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    resumed = json.loads(again.stdout)
    assert resumed["already"] == resumed["cells"] == len(rows) and resumed["ran"] == 0
    human = CliRunner().invoke(app, args)  # the human form still runs (nothing left to do)
    assert human.exit_code == 0, human.output


def test_quick_and_full_share_the_evaluation(shared_data: Path) -> None:
    path = GRIDS / "routerbench.yaml"
    spec = load_grid(path)
    quick = {(c.router.name, str(c.train_size)): c for c in cells(spec, path, quick=True)}
    full = [
        c for c in cells(spec, path) if c.router.name == "best_single" and c.train_size != "all"
    ]
    a = run_cell(quick[("best_single", "all")])["row"]
    b = run_cell(full[0])["row"]
    assert (a["quality"], a["cost_usd"], a["test_rows"]) == (
        b["quality"],
        b["cost_usd"],
        b["test_rows"],
    )
    assert b["train_rows"] < a["train_rows"]


def test_clinc_rules_route_most_queries_to_the_right_specialist(tmp_path: Path) -> None:
    result = run_grid(GRIDS / "clinc_rules_vs_learned.yaml", tmp_path, quick=True)
    rows = pd.read_csv(result.results)
    rules = rows[rows["router"] == "rules"]["accuracy"].iloc[0]
    best_single = rows[rows["router"] == "best_single"]["accuracy"].iloc[0]
    assert rules > 0.5 > best_single  # the keyword rules are far better than one specialist
    assert "Disagreements" in result.report.read_text() or not (rows["family"] == "learned").any()


def test_bad_grid_is_one_clear_line(tmp_path: Path) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\ndatasets: [{name: x, loader: nope}]\nrouters: [{name: random}]\n")
    result = CliRunner().invoke(app, ["lab", "run", str(grid), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "unknown dataset loader 'nope'" in result.output


@pytest.mark.slow
def test_grid_runs_on_a_local_ray_instance(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    grid = tmp_path / "tiny.yaml"
    grid.write_text(
        "name: tiny\ndatasets: [{name: mt, loader: routellm_mt_bench}]\n"
        "routers: [{name: random}]\nseeds: [0, 1]\n"
    )
    result = run_grid(grid, tmp_path / "out", ray_address="local")
    rows = pd.read_csv(result.results)
    assert len(rows) == 6 and result.computed == 6
    assert set(rows["seed"]) == {0, 1} and rows["apgr"].notna().all()
