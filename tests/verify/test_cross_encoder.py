"""The cross-encoder's training loop and scorer on a tiny real run (no packaged weights
needed): pairs are selected as at inference, a checkpoint is written and exported in
float16, and the exported weights score pairs as probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pinfactory.verify.cross_training import Pair, batches, evidence_text, export, train_cross
from pinfactory.verify.crossencoder import CrossEncoder
from pinfactory.verify.support import SupportModel

EVIDENCE = [
    "The museum opened in 1998.",
    "It holds 4,000 paintings.",
    "Entry is free on Sundays.",
    "The cafe closes at 5 pm.",
]


def test_evidence_is_selected_as_the_checker_selects_it() -> None:
    text = evidence_text("How many paintings does it hold?", EVIDENCE, SupportModel(top_k=1))
    assert text == "It holds 4,000 paintings."


def test_batches_cover_every_pair_once_in_similar_lengths() -> None:
    pairs = [Pair("e", "c", i % 2, "x") for i in range(50)]
    lengths = [i % 7 for i in range(50)]
    plan = batches(pairs, lengths, 8, seed=0)
    assert sorted(i for b in plan for i in b) == list(range(50))
    assert plan == batches(pairs, lengths, 8, seed=0)  # seeded
    assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) <= 6 for b in plan)


def test_a_tiny_run_trains_exports_and_scores(tmp_path: Path) -> None:
    pairs = [
        Pair(EVIDENCE[0], "The museum opened in 1998.", 1, "t"),
        Pair(EVIDENCE[0], "The museum opened in 2005.", 0, "t"),
        Pair(EVIDENCE[1], "It holds 4,000 paintings.", 1, "t"),
        Pair(EVIDENCE[1], "It holds no paintings.", 0, "t"),
    ]
    summary = train_cross(pairs, tmp_path / "work", seed=0, batch_size=2, max_steps=2, save_every=1)
    assert summary["steps"] == 2 and summary["pairs"] == 4
    log = [json.loads(x) for x in (tmp_path / "work" / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    weights = export(tmp_path / "work" / "checkpoint", tmp_path / "out")
    assert weights.stat().st_size < 60_000_000  # float16: about 45 MB
    scorer = CrossEncoder(tmp_path / "out", threads=1)
    p = scorer.predict([(EVIDENCE[0], "The museum opened in 1998."), (EVIDENCE[2], "x")])
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    again = scorer.predict([(EVIDENCE[0], "The museum opened in 1998.")])
    assert again[0] == p[0]  # cached
