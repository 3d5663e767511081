"""Off-policy evaluation: estimates from a logged policy against the truth a full table gives."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.errors import RoutingError
from pinfactory.lab import datasets, ope

from .new_data import maths_log


def test_ips_and_dr_recover_a_candidates_value_from_random_logs() -> None:
    rng = np.random.default_rng(0)
    n, members = 4000, 3
    vectors = rng.normal(size=(n, 8))
    truth = np.stack([vectors[:, 0], -vectors[:, 0], 0.2 + 0 * vectors[:, 0]], axis=1)
    chosen = rng.integers(0, members, size=n)
    propensity = np.full(n, 1 / members)
    reward = truth[np.arange(n), chosen] + rng.normal(scale=0.1, size=n)
    target = truth.argmax(axis=1)  # the best policy: its true value is known
    value = truth[np.arange(n), target].mean()
    predicted = ope.cross_fitted_rewards(vectors, chosen, reward, members)
    result = ope.compare(chosen, propensity, reward, target, predicted)
    assert result.ips.low <= value <= result.ips.high
    assert result.dr.low <= value <= result.dr.high
    assert result.dr.high - result.dr.low < result.ips.high - result.ips.low  # DR is tighter
    assert result.beats_live  # the live policy (uniform) is worse
    with pytest.raises(RoutingError, match="propensities"):
        ope.ips_terms(chosen, np.zeros(n), reward, target)


def test_evaluate_offline_says_whether_a_candidate_beats_the_live_policy(
    shared_data: Path, tmp_path: Path
) -> None:
    log = maths_log(shared_data, tmp_path / "maths.csv")
    candidate = tmp_path / "r.pkl"
    fitted = CliRunner().invoke(
        app, ["router", "fit", "--data", str(log), "--kind", "quality", "--out", str(candidate)]
    )
    assert fitted.exit_code == 0, fitted.output
    test = datasets.load("log", Path("/"), path=str(log)).test
    rng = np.random.default_rng(1)
    weak = next(m for m in test.members if "gpt-4" not in m)
    decisions = tmp_path / "decisions.csv"
    with decisions.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "member", "propensity", "quality", "cost_usd"])
        for i, prompt in enumerate(test.prompts):  # live: the weak model 90% of the time
            j = test.members.index(weak) if rng.random() < 0.9 else 1 - test.members.index(weak)
            p = 0.9 if test.members[j] == weak else 0.1
            writer.writerow([prompt, test.members[j], p, test.quality[i, j], test.cost[i, j]])
    result = CliRunner().invoke(
        app,
        [
            "router",
            "evaluate-offline",
            "--log",
            str(decisions),
            "--candidate",
            str(candidate),
            "--json",
        ],
    )
    assert result.output.startswith("{"), (result.output, result.exception)
    report = json.loads(result.output)
    assert set(report) >= {"live", "ips", "dr", "dr_gain_over_live", "beats_live"}
    assert report["decisions"] == len(test)
    assert result.exit_code == (0 if report["beats_live"] else 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,member,propensity,quality,cost_usd\nhi,x,0,1,0\n")
    refused = CliRunner().invoke(
        app, ["router", "evaluate-offline", "--log", str(bad), "--candidate", str(candidate)]
    )
    assert refused.exit_code == 1 and "propensity must be in (0, 1]" in refused.output
