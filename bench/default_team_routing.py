"""Routing accuracy of the default team on lab/default_team/queries.yaml, before and after.

    PYTHONPATH=src python bench/default_team_routing.py [--json]

"before" is the default team as it shipped before conversation routing and the rule fixes
(lab/default_team/default-team-before.yaml); "after" is the packaged default team. The set
is split at random within each category (seed 0): the routes were tuned looking only at the
"tune" half; the "report" half is the figure to quote. Every member is enabled (the frontier
by placeholders), so a paid route counts. Writes bench/results/default_team_routing.json and
bench/results/default_team_routing.png (accuracy per category, before and after).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pinfactory.lab.team_eval import Score, evaluate, load_items, split
from pinfactory.team import default_team_path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ROOT / "lab" / "default_team" / "queries.yaml"
BEFORE = ROOT / "lab" / "default_team" / "default-team-before.yaml"


def summary(score: Score) -> dict[str, Any]:
    return {
        "accuracy": round(score.accuracy, 4),
        "right": score.right,
        "total": score.total,
        "by_category": {c: {"right": r, "total": n} for c, (r, n) in score.by_category.items()},
        "misses": [
            {"query": m.item.shown, "expect": m.item.expect, "got": m.got, "reason": m.reason}
            for m in score.misses
        ],
    }


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    report = results["report"]
    categories = list(report["after"]["by_category"])
    x = np.arange(len(categories))
    figure, axes = plt.subplots(figsize=(9, 4.5))
    for offset, which in ((-0.2, "before"), (0.2, "after")):
        cats = report[which]["by_category"]
        values = [cats[c]["right"] / cats[c]["total"] for c in categories]
        axes.bar(x + offset, values, width=0.4, label=f"{which} ({report[which]['accuracy']:.2f})")
    axes.set_xticks(x, categories, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("routing accuracy (report half)")
    axes.set_ylim(0, 1.05)
    axes.set_title(f"Default team routing, {report['after']['total']} held-out queries")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the JSON")
    parser.add_argument("--misses", action="store_true", help="list the tune half's misses")
    args = parser.parse_args()
    items = load_items(QUERIES)
    tune, report = split(items, seed=0)
    results: dict[str, Any] = {"queries": len(items), "seed": 0}
    for part, chosen in (("tune", tune), ("report", report)):
        results[part] = {
            "before": summary(evaluate(BEFORE, chosen)),
            "after": summary(evaluate(default_team_path(), chosen)),
        }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "default_team_routing.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out / "default_team_routing.png")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for part in ("tune", "report"):
        before, after = results[part]["before"], results[part]["after"]
        print(
            f"{part:<6} {after['total']} queries: before {before['accuracy']:.3f}, "
            f"after {after['accuracy']:.3f}"
        )
        for category, row in after["by_category"].items():
            old = before["by_category"][category]
            print(f"  {category:<24} {old['right']:>3}/{old['total']:<3} -> {row['right']}")
    if args.misses:
        for miss in results["tune"]["after"]["misses"]:
            print(f"MISS {miss['expect']:>10} <- {miss['got']:<10} {miss['query']}")
            print(f"     {miss['reason']}")


if __name__ == "__main__":
    main()
