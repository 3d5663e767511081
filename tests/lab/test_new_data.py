"""The lab on data a new user brings: equal-cost intent specialists with no out-of-scope class,
and a two-model maths set, in the generic log format (made from shared/data by new_data.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.lab import datasets, metrics
from pinfactory.lab.composed import HybridLab, SemanticLab, SemanticParams
from pinfactory.lab.experiment import run_grid
from pinfactory.lab.grid import cells, load_grid, run_cell
from pinfactory.lab.routers import BestSingle, tied_best

from .new_data import intent_log, maths_log


@pytest.fixture(scope="module")
def intents18(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("logs") / "intents18.csv"
    return intent_log(shared_data, out, groups=18, per_intent=12, test_every=4)


@pytest.fixture(scope="module")
def maths(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return maths_log(shared_data, tmp_path_factory.mktemp("logs") / "maths.csv")


def _grid(folder: Path, log: str, routers: str, extra: str = "") -> Path:
    grid = folder / "grid.yaml"
    grid.write_text(
        f"name: new\ndatasets: [{{name: set, loader: log, options: {{path: {log}}}}}]\n"
        f"routers:\n{routers}{extra}"
    )
    return grid


def test_equal_costs_report_accuracy_not_aiq(intents18: Path, tmp_path: Path) -> None:
    grid = _grid(
        tmp_path,
        str(intents18),
        "  - {name: semantic, kind: semantic, params: {encoder: minilm-static}}\n",
    )
    result = run_grid(grid, tmp_path / "out")
    rows = pd.read_csv(result.results)
    assert rows["aiq"].isna().all()  # no cost range: AIQ is undefined, not a crash
    report = result.report.read_text()
    assert "Every member costs the same" in report
    assert "best AIQ" not in report
    assert "most accurate router **semantic**" in report


def test_semantic_never_abstains_without_an_out_of_scope_class(intents18: Path) -> None:
    splits = datasets.load("log", Path("/"), path=str(intents18))
    router = SemanticLab("semantic", 0, SemanticParams(encoder="minilm-static")).fit(splits.train)
    choices = router.predict(splits.test)
    shares = np.bincount(choices, minlength=len(splits.test.members)) / len(choices)
    assert shares.max() < 3 / len(splits.test.members)  # no member soaks up abstentions
    assert metrics.accuracy(splits.test, choices) > 0.6


def test_best_single_ties_are_not_broken_by_member_order(intents18: Path) -> None:
    train = datasets.load("log", Path("/"), path=str(intents18)).train
    tied = tied_best(train)
    assert len(tied) > 1  # the groups with one more intent tie exactly
    picks = {BestSingle(seed=s).fit(train).member_ for s in range(12)}
    assert picks <= set(tied) and len(picks) > 1


def test_best_single_is_fitted_on_the_whole_split_at_every_size(
    intents18: Path, tmp_path: Path
) -> None:
    grid = _grid(tmp_path, str(intents18), "  - {name: random}\n", "train_sizes: [2, all]\n")
    by_size = {
        str(c.train_size): run_cell(c)["row"]
        for c in cells(load_grid(grid), grid)
        if c.router.name == "best_single"
    }
    assert by_size["2"]["accuracy"] == by_size["all"]["accuracy"]
    assert by_size["2"]["train_rows"] < by_size["all"]["train_rows"]
    # through the grid, where one fit serves every size: each row keeps its own size and rows
    rows = pd.read_csv(run_grid(grid, tmp_path / "out").results)
    single = rows[rows["router"] == "best_single"].set_index("train_size")
    assert sorted(single.index) == ["2", "all"]
    assert single.loc["2", "train_rows"] < single.loc["all", "train_rows"]
    assert single.loc["2", "accuracy"] == single.loc["all", "accuracy"]


def test_a_log_path_is_relative_to_the_grid_file_like_rules(
    intents18: Path, tmp_path: Path
) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "set.csv").write_bytes(intents18.read_bytes())
    grid = _grid(tmp_path, "logs/set.csv", "  - {name: random}\n")
    planned = cells(load_grid(grid), grid)
    assert planned[0].dataset.options["path"] == str((tmp_path / "logs" / "set.csv").resolve())
    missing = _grid(tmp_path, "logs/nope.csv", "  - {name: random}\n")
    result = CliRunner().invoke(app, ["lab", "run", str(missing), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "looked beside the grid file" in result.output


def test_yaml_booleans_in_keywords_fail_before_any_cell_runs(
    intents18: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "kind: rules\nfallback: spec00\nrules:\n"
        "  - name: fine\n    when: {keywords: [hello]}\n    route: spec01\n"
        "  - name: answers\n    when:\n      keywords: [maybe, yes, no]\n    route: spec02\n"
    )
    grid = _grid(tmp_path, str(intents18), "  - {name: rules, rules: rules.yaml}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["lab", "run", str(grid), "--out", str(out)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "rules.yaml:9: rule 'answers' (rule 2): when.keywords item 2" in output
    assert "YAML read `yes` as the boolean true; quote it ('yes')" in output
    assert not (out / "cells").exists()  # nothing ran before the error


def test_the_hybrid_drops_rules_the_data_says_are_worse(intents18: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(  # a rule that claims every question for one specialist
        "kind: rules\nfallback: spec00\nrules:\n"
        "  - name: questions\n    when: {keywords: [what, how, my, i, is, can, the]}\n"
        "    route: spec03\n"
    )
    splits = datasets.load("log", Path("/"), path=str(intents18))
    hybrid = HybridLab("hybrid", 0, rules, SemanticParams(encoder="minilm-static")).fit(
        splits.train
    )
    assert hybrid.deferred_ == ["questions"]
    semantic = SemanticLab("semantic", 0, SemanticParams(encoder="minilm-static")).fit(splits.train)
    assert metrics.accuracy(splits.test, hybrid.predict(splits.test)) == pytest.approx(
        metrics.accuracy(splits.test, semantic.predict(splits.test))
    )


def test_router_fit_reads_the_generic_log_and_its_split(maths: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.pkl"
    args = ["router", "fit", "--data", str(maths), "--kind", "quality", "--out", str(out)]
    fitted = CliRunner().invoke(app, args)
    assert fitted.exit_code == 0, fitted.output
    train = datasets.load("log", Path("/"), path=str(maths)).train
    assert f"on {len(train)} train prompts" in fitted.output
    evaluated = CliRunner().invoke(
        app, ["router", "eval", "--router", str(out), "--data", str(maths), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert '"prompts": ' + str(len(datasets.load("log", Path("/"), path=str(maths)).test)) in (
        evaluated.output
    )
    assert '"split": "test"' in evaluated.output


def test_router_fit_cost_model_is_saved_or_refused(maths: Path, tmp_path: Path) -> None:
    from pinfactory.routing.learned_kinds import load_router

    base = ["router", "fit", "--data", str(maths), "--out"]
    fitted = CliRunner().invoke(
        app, [*base, str(tmp_path / "q.pkl"), "--kind", "irt", "--cost-model", "neighbours"]
    )
    assert fitted.exit_code == 0, fitted.output
    router = load_router(tmp_path / "q.pkl")
    assert getattr(router, "cost_model", None) == "neighbours"
    refused = CliRunner().invoke(
        app, [*base, str(tmp_path / "g.pkl"), "--kind", "gumbel", "--cost-model", "neighbours"]
    )
    assert refused.exit_code == 1 and "weighs no per-prompt cost" in refused.output


def test_router_fit_target_is_honoured_or_refused(maths: Path, tmp_path: Path) -> None:
    base = ["router", "fit", "--data", str(maths), "--kind", "quality", "--out"]
    refused = CliRunner().invoke(app, [*base, str(tmp_path / "a.pkl"), "--target", "0.99"])
    assert refused.exit_code == 1
    assert "quality target 0.99 is not reached" in " ".join(refused.output.split())
    honoured = CliRunner().invoke(app, [*base, str(tmp_path / "b.pkl"), "--target", "0.6"])
    assert honoured.exit_code == 0, honoured.output
    held = float(honoured.output.split("prompts: quality ")[1].split(",")[0])
    assert held >= 0.6
    classifier = CliRunner().invoke(
        app,
        [
            "router",
            "fit",
            "--data",
            str(maths),
            "--kind",
            "classifier",
            "--out",
            str(tmp_path / "c.pkl"),
            "--target",
            "0.6",
        ],
    )
    assert classifier.exit_code == 1 and "no cost weight" in classifier.output


def test_gumbel_uses_every_specialist_and_the_strong_model_at_lambda_zero(
    intents18: Path, maths: Path
) -> None:
    from pinfactory.routing.gumbel import GumbelRouter

    intents = datasets.load("log", Path("/"), path=str(intents18))
    router = GumbelRouter(seed=0).fit(intents.train)
    chosen = router.predict(intents.test.prompts, lam=0.0)
    # no collapse (it left 6-7 of 18 specialists unused); 100 examples each leave one rare miss
    assert len(set(chosen.tolist())) >= len(intents.test.members) - 1
    assert metrics.accuracy(intents.test, chosen) > 0.4
    two = datasets.load("log", Path("/"), path=str(maths))
    router = GumbelRouter(seed=0).fit(two.train)
    strong = two.test.members.index("gpt-4-1106-preview")
    at_zero = router.predict(two.test.prompts, lam=0.0)
    dear = router.predict(two.test.prompts, lam=100.0 / float(router.mean_cost_.max()))
    assert (at_zero == strong).mean() > 0.3  # lambda = 0: quality alone, the strong model wins
    assert (dear == strong).mean() < (at_zero == strong).mean()
    rows = np.arange(len(two.test))
    weak_quality = two.test.quality[:, 1 - strong].mean()
    assert two.test.quality[rows, at_zero].mean() > weak_quality


def test_a_rules_row_runs_only_on_the_datasets_whose_members_it_names(
    intents18: Path, maths: Path, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(
        "fallback: spec00\nrules:\n  - {name: hi, when: {keywords: [hello]}, route: spec01}\n"
    )

    def grid(row: str) -> Path:
        path = tmp_path / "grid.yaml"
        path.write_text(
            "name: two\ndatasets:\n"
            f"  - {{name: intents, loader: log, options: {{path: {intents18}}}}}\n"
            f"  - {{name: maths, loader: log, options: {{path: {maths}}}}}\n"
            f"routers:\n  - {{name: random}}\n  - {row}\n"
        )
        return path

    out = tmp_path / "out"
    everywhere = grid("{name: rules, rules: rules.yaml}")
    result = CliRunner().invoke(app, ["lab", "run", str(everywhere), "--out", str(out)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "routes to spec00, spec01, which are not members of dataset 'maths'" in output
    assert "datasets: [...]" in output
    assert not (out / "cells").exists()  # it fails when planned, before any cell runs
    scoped = grid("{name: rules, rules: rules.yaml, datasets: [intents]}")
    planned = cells(load_grid(scoped), scoped)
    assert {c.dataset.name for c in planned if c.router.name == "rules"} == {"intents"}
    assert {c.dataset.name for c in planned if c.router.name == "random"} == {"intents", "maths"}
    typo = grid("{name: rules, rules: rules.yaml, datasets: [intent]}")
    result = CliRunner().invoke(app, ["lab", "run", str(typo), "--out", str(out)])
    assert result.exit_code == 1
    assert "router 'rules' names datasets ['intent']; the grid's datasets: intents, maths" in (
        " ".join(result.output.split())
    )
