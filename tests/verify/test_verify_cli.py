"""``pinfactory verify``, ``verify batch`` and the training pieces, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.verify.grounding import GroundingChecker
from pinfactory.verify.support import FEATURES, SupportHead
from pinfactory.verify.training import Featurised, choose_threshold, fit_head

runner = CliRunner()
POLICY = (
    "Eligible employees receive 16 weeks of paid parental leave. Employees must have worked "
    "here for 12 months to be eligible. Returns are accepted within 30 days of delivery."
)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.txt"
    path.write_text(POLICY)
    return path


@pytest.mark.parametrize(
    ("answer", "label", "code"),
    [
        ("Eligible employees receive 16 weeks of paid parental leave.", "supported", 0),
        ("Parents receive 12 weeks of paid parental leave.", "contradicted", 4),
        ("The moon is made of cheese.", "unsupported", 3),
    ],
)
def test_verify_exits_with_the_label(policy: Path, answer: str, label: str, code: int) -> None:
    result = runner.invoke(app, ["verify", "--answer", answer, "--evidence", str(policy), "--json"])
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["label"] == label


def test_verify_without_an_answer_says_what_it_needs() -> None:
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 1
    assert "--answer" in result.output


def test_batch_scores_every_line_and_reports_bad_ones(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        {"id": "a", "answer": "Returns are accepted within 30 days.", "evidence": POLICY},
        {"id": 2, "answer": "Parents get 12 weeks of paid parental leave.", "evidence": [POLICY]},
        {"id": "c", "answer": "30 days.", "evidence": POLICY,
         "question": "How long do I have to return an item?"},
        {"id": "d", "answer": "No evidence field here."},
    ]  # fmt: skip
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n\nnot json\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["verify", "batch", str(source), "--out", str(out)])
    assert result.exit_code == 1, result.output  # two bad lines
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r.get("label") for r in records[:3]] == ["supported", "contradicted", "supported"]
    assert set(records[0]) == {"id", "label", "confidence", "findings"}
    assert records[1]["id"] == 2 and records[1]["findings"][0]["kind"] == "claim_contradicted"
    assert records[3]["id"] == "d" and "field 'evidence'" in records[3]["error"]
    assert "not JSON" in records[4]["error"] and records[4]["line"] == 6


def test_head_training_and_threshold_choice_are_reproducible(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, len(FEATURES)))
    y = (x[:, 0] + 0.5 * rng.normal(size=3000) > 0).astype(int)
    first, second = fit_head(x, y, seed=3, hidden=8), fit_head(x, y, seed=3, hidden=8)
    assert np.array_equal(first.predict(x), second.predict(x))
    assert ((first.predict(x) > 0.5) == y).mean() > 0.8
    path = tmp_path / "head.npz"
    first.save(path)
    assert np.allclose(SupportHead.load(path).predict(x), first.predict(x))
    dev = Featurised([x[i : i + 1] for i in range(100)], [int(v) for v in y[:100]], ["s"] * 100)
    threshold, ba = choose_threshold(first, {"s": dev})
    assert 0.05 <= threshold <= 0.95 and ba > 0.75


def test_the_fused_calibration_is_fitted_on_every_dev_set_and_cached(
    tmp_path: Path, checker: GroundingChecker
) -> None:
    from pinfactory.verify.confidence import FUSED_FEATURES
    from pinfactory.verify.datasets import Item
    from pinfactory.verify.training import fit_fusion

    good = [
        "Eligible employees receive 16 weeks of paid parental leave.",
        "Employees must have worked here for 12 months to be eligible.",
        "Returns are accepted within 30 days of delivery.",
        "Parental leave is paid for 16 weeks.",
    ]
    bad = [
        "Parents receive 12 weeks of paid parental leave.",
        "The moon is made of cheese.",
        "Returns are accepted within 90 days of purchase at any store.",
        "Employees get a free car after two years.",
    ]

    def items(source: str) -> list[Item]:
        return [Item(a, (POLICY,), 1, source) for a in good] + [
            Item(a, (POLICY,), 0, source) for a in bad
        ]

    dev = {"one": items("one"), "two": items("two")}
    calibrator, metrics = fit_fusion(checker, tmp_path, dev, seed=0, progress=lambda *_: None)
    assert calibrator.features == FUSED_FEATURES
    assert 0.05 <= calibrator.answer_threshold <= 0.95
    assert calibrator.meta["fitted_on"] == ["one", "two"]
    assert set(metrics["dev"]) == {"one", "two"}
    assert metrics["dev"]["one"]["auroc_fused"] > 0.8
    assert metrics["dev_mean_ba"] > 0.7
    assert len(list(tmp_path.glob("fusion-*.json"))) == 2  # cached: a refit reads them back
    again, _ = fit_fusion(checker, tmp_path, dev, seed=0, progress=lambda *_: None)
    assert again.coef_ == calibrator.coef_
