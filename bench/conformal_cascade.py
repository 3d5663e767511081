"""Conformal cascades on RouterBench: is the bound kept, and what does it save?

    PYTHONPATH=src python bench/conformal_cascade.py [--splits 500] [--json]

Scorer: a per-member logistic quality predictor (reads the prompt only) trained on
RouterBench's train split; since it needs no answer, a tier whose score falls short is
skipped without being called, and each prompt pays only the tier that answers it. Cascade:
the train split's cost-quality frontier, cheapest first, ending at GPT-4. For each (epsilon,
delta), the 945 test prompts are split at random ``--splits`` times into calibration and
evaluation halves; thresholds come from ``pinfactory.routing.conformal.calibrate`` on the
calibration half; on the evaluation half we record whether the error rate of answers
accepted before the last tier exceeded epsilon (a violation: its rate must be at most
delta), the quality, and the cost against GPT-4 alone. Writes
bench/results/conformal_cascade.json and conformal_cascade.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from pinfactory.lab.composed import frontier
from pinfactory.lab.datasets import default_root
from pinfactory.routing import conformal
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.table_files import load_routerbench

ROOT = Path(__file__).resolve().parents[1]
GPT4 = "gpt-4-1106-preview"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    train, test = load_routerbench(default_root())
    tiers = frontier(train)
    if test.members.index(GPT4) not in tiers:
        tiers.append(test.members.index(GPT4))
    scorer = QualityRouter("logistic", seed=0).fit(train)
    scores = scorer.predicted_quality(scorer.embed(test.prompts, cache=True))[:, tiers]
    right = test.quality[:, tiers] >= 0.5
    cost = test.cost[:, tiers]
    gpt4_cost = float(test.cost[:, test.members.index(GPT4)].mean())
    gpt4_quality = float(test.quality[:, test.members.index(GPT4)].mean())
    results: dict[str, Any] = {
        "tiers": [test.members[t] for t in tiers],
        "test_prompts": len(test),
        "splits": args.splits,
        "gpt4": {"quality": gpt4_quality, "cost_usd": gpt4_cost},
        "cells": [],
    }
    rng = np.random.default_rng(0)
    for epsilon in (0.05, 0.1, 0.15, 0.2):
        for delta in (0.05, 0.1, 0.2):
            violations, quality, cost_share, accepted = [], [], [], []
            for _ in track(range(args.splits), description=f"eps {epsilon} delta {delta}"):
                order = rng.permutation(len(test))
                cal, ev = order[: len(order) // 2], order[len(order) // 2 :]
                seed = int(rng.integers(1 << 31))
                limits = conformal.calibrate(scores[cal], right[cal], epsilon, delta, seed=seed)
                out = conformal.run(
                    scores[ev], right[ev], cost[ev], limits, scored_before_call=True
                )
                violations.append(out.accepted_error > epsilon and out.accepted_share > 0)
                quality.append(out.quality)
                cost_share.append(out.cost / gpt4_cost)
                accepted.append(out.accepted_share)
            results["cells"].append(
                {
                    "epsilon": epsilon,
                    "delta": delta,
                    "violation_rate": float(np.mean(violations)),
                    "quality": float(np.mean(quality)),
                    "cost_share_of_gpt4": float(np.mean(cost_share)),
                    "cost_saved_vs_gpt4": 1 - float(np.mean(cost_share)),
                    "accepted_before_last": float(np.mean(accepted)),
                }
            )
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "conformal_cascade.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out_dir / "conformal_cascade.png")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"tiers {results['tiers']}; GPT-4 {gpt4_quality:.3f} at ${gpt4_cost:.2e}")
    for c in results["cells"]:
        print(
            f"eps {c['epsilon']:.2f} delta {c['delta']:.2f}: violations {c['violation_rate']:.3f}"
            f" (<= delta), quality {c['quality']:.3f}, cost {c['cost_share_of_gpt4']:.1%} of "
            f"GPT-4's, settled early {c['accepted_before_last']:.1%}"
        )


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for delta in sorted({c["delta"] for c in results["cells"]}):
        cells = [c for c in results["cells"] if c["delta"] == delta]
        eps = [c["epsilon"] for c in cells]
        left.plot(eps, [c["violation_rate"] for c in cells], marker="o", label=f"delta {delta}")
        left.axhline(delta, linestyle=":", color=left.lines[-1].get_color())
        right.plot(
            eps, [c["cost_saved_vs_gpt4"] for c in cells], marker="o", label=f"delta {delta}"
        )
    left.set_xlabel("epsilon (error bound on accepted answers)")
    left.set_ylabel("violation rate over random calibration splits")
    left.set_title("bound kept when the line is under its dotted delta")
    right.set_xlabel("epsilon")
    right.set_ylabel("cost saved against GPT-4 alone")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
