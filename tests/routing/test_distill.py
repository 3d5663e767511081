"""Rules distilled from a router: readable, replayable, and as faithful as they claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.routing.distill import decide_all, distill, fidelity
from pinfactory.routing.rules import RulesConfig


def test_a_decision_list_mimics_its_teacher_on_prompts_it_never_saw(clinc: dict[str, Any]) -> None:
    texts, labels = clinc["train"]
    rng = np.random.default_rng(0)
    rows = rng.choice(len(texts), size=3000, replace=False)
    result = distill([texts[i] for i in rows], [labels[i] for i in rows], max_rules=12)
    assert 1 <= len(result.config.rules) <= 12
    assert result.fidelity > 0.5  # ten domains: one alone is 0.1
    test_texts, test_labels = clinc["test"]
    assert fidelity(result.config, test_texts[:1500], test_labels[:1500]) > 0.45
    dumped = yaml.safe_dump(result.config.model_dump(exclude_defaults=True, by_alias=True))
    again = RulesConfig.model_validate(yaml.safe_load(dumped))  # the team file's rule syntax
    assert decide_all(again, test_texts[:200]) == decide_all(result.config, test_texts[:200])


def test_rules_distill_writes_a_file_rules_test_runs(tmp_path: Path, shared_data: Path) -> None:
    from tests.lab.new_data import maths_log

    log = maths_log(shared_data, tmp_path / "maths.csv")
    teacher = tmp_path / "r.pkl"
    fitted = CliRunner().invoke(
        app, ["router", "fit", "--data", str(log), "--kind", "quality", "--out", str(teacher)]
    )
    assert fitted.exit_code == 0, fitted.output
    rules = tmp_path / "rules.yaml"
    made = CliRunner().invoke(
        app,
        ["rules", "distill", "--router", str(teacher), "--data", str(log), "--out", str(rules)],
    )
    assert made.exit_code == 0, made.output
    assert "fidelity" in made.output and "test prompts" in made.output
    checked = CliRunner().invoke(app, ["rules", "test", str(rules)])
    assert checked.exit_code == 0, checked.output
    assert "0 failed" in checked.output
