"""Rules distilled from learned routers against hand-written rules, on CLINC150 and RouterBench.

    PYTHONPATH=src python bench/distill_rules.py [--json]

For each dataset a learned router (the teacher) is fitted on the train split; its choices on
the train split are distilled into a decision list of at most 12 rules
(pinfactory.routing.distill); on the test split we report the rules' fidelity (agreement
with the teacher) and accuracy (share routed to a member with the best quality there), next to
the teacher's and the hand-written rules' (lab/rules/clinc_domains.yaml,
lab/rules/routerbench.yaml). RouterBench also gets mean quality and cost per query.
Writes bench/results/distill_rules.json and the distilled files to
bench/results/distilled-<dataset>.yaml.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pinfactory.lab import datasets, metrics
from pinfactory.lab.composed import SemanticLab, SemanticParams
from pinfactory.lab.datasets import default_root
from pinfactory.routing.distill import decide_all, distill
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.rules_file import load_rules_file
from pinfactory.routing.table import RoutingTable

ROOT = Path(__file__).resolve().parents[1]


def indices(table: RoutingTable, names: list[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.array([table.members.index(n) for n in names], dtype=np.int64)


def row(
    table: RoutingTable, choices: np.ndarray[Any, Any], teacher: np.ndarray[Any, Any]
) -> dict[str, float]:
    outcome = metrics.evaluate(table, choices)
    return {
        "accuracy": outcome.accuracy,
        "quality": outcome.quality,
        "cost_usd": outcome.cost_usd,
        "fidelity": float((choices == teacher).mean()),
    }


def run(name: str, splits: datasets.Splits, teacher_of: Any, hand: Path) -> dict[str, Any]:
    train, test = splits.train, splits.test
    teacher_train, teacher_test = teacher_of(train, test)
    distilled = distill(train.prompts, [train.members[i] for i in teacher_train], max_rules=12)
    out = ROOT / "bench" / "results" / f"distilled-{name}.yaml"
    out.write_text(
        yaml.safe_dump(
            distilled.config.model_dump(exclude_defaults=True, by_alias=True),
            sort_keys=False,
            allow_unicode=True,
        )
    )
    rules = indices(test, decide_all(distilled.config, test.prompts))
    hand_config = load_rules_file(hand)
    hand_choices = indices(test, decide_all(hand_config, test.prompts))
    return {
        "rules_file": str(out.relative_to(ROOT)),
        "rules": len(distilled.config.rules),
        "train_fidelity": distilled.fidelity,
        "teacher": row(test, teacher_test, teacher_test),
        "distilled": row(test, rules, teacher_test),
        "hand_written": row(test, hand_choices, teacher_test),
        "hand_rules": len(hand_config.rules),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = default_root()

    def semantic(train: RoutingTable, test: RoutingTable) -> tuple[Any, Any]:
        router = SemanticLab("semantic", 0, SemanticParams()).fit(train)
        return router.predict(train), router.predict(test)

    def quality(train: RoutingTable, test: RoutingTable) -> tuple[Any, Any]:
        router = QualityRouter("logistic", seed=0).fit(train)
        lam = 0.5 / float(router.mean_cost_.max())  # GPT-4's mean cost weighs half a point
        return router.predict(train.prompts, lam=lam), router.predict(test.prompts, lam=lam)

    results = {
        "clinc150": run(
            "clinc150",
            datasets.load("clinc150", root),
            semantic,
            ROOT / "lab" / "rules" / "clinc_domains.yaml",
        ),
        "routerbench": run(
            "routerbench",
            datasets.load("routerbench", root),
            quality,
            ROOT / "lab" / "rules" / "routerbench.yaml",
        ),
    }
    out = ROOT / "bench" / "results" / "distill_rules.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        print(f"{name}: {r['rules']} distilled rules (train fidelity {r['train_fidelity']:.3f})")
        for who in ("teacher", "distilled", "hand_written"):
            x = r[who]
            print(
                f"  {who:<13} accuracy {x['accuracy']:.3f}  fidelity {x['fidelity']:.3f}  "
                f"quality {x['quality']:.3f}  cost ${x['cost_usd']:.2e}"
            )


if __name__ == "__main__":
    main()
