"""Choosing a RouterBench router on the development split only (5-fold CV inside train).

    PYTHONPATH=src python bench/routerbench_dev.py [--encoders minilm-static minilm]

Every candidate (quality model x cost model x encoder) is fitted on four fifths of
RouterBench's *train* split and scored on the fifth left out; the out-of-fold predictions of all
five folds make one replay of the whole train split, scored by AIQ over its single-member
cost range and the cost share of GPT-4 at which the hull reaches GPT-4's quality. The test
split is never read. For the best candidate, the calls at the lambda where it spends half
of GPT-4's cost are sorted into kinds per task: ``overpaid`` (a cheaper member was also
right), ``missed`` (the chosen member was wrong and another was right), ``hopeless`` (no
member was right). Writes ``bench/results/routerbench_dev.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pinfactory.embeddings import CachedEncoder, get_encoder
from pinfactory.lab import metrics
from pinfactory.lab.datasets import default_root, routerbench
from pinfactory.routing.cluster import ClusterRouter
from pinfactory.routing.irt import IRTRouter
from pinfactory.routing.learned import CostAwareRouter, Floats, lambda_grid
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.table import RoutingTable

ROOT = Path(__file__).resolve().parents[1]
GPT4 = "gpt-4-1106-preview"
FOLDS = 5
Make = Callable[[str], CostAwareRouter]
CANDIDATES: dict[str, Make] = {
    "logistic C=0.3": lambda e: QualityRouter("logistic", c=0.3, encoder=e),
    "logistic C=1": lambda e: QualityRouter("logistic", c=1.0, encoder=e),
    "logistic C=3": lambda e: QualityRouter("logistic", c=3.0, encoder=e),
    "logistic C=10": lambda e: QualityRouter("logistic", c=10.0, encoder=e),
    "irt 16": lambda e: IRTRouter(dims=16, encoder=e),
    "irt 32": lambda e: IRTRouter(dims=32, encoder=e),
    "knn 40": lambda e: QualityRouter("knn", k=40, encoder=e),
    "knn 80": lambda e: QualityRouter("knn", k=80, encoder=e),
    "knn 80 calibrated": lambda e: QualityRouter(
        "knn", k=80, temperature=0.05, prior=5.0, encoder=e
    ),
    "cluster 16": lambda e: ClusterRouter(clusters=16, encoder=e),
}
ENSEMBLES = {
    "ensemble logistic C=1 + irt 16": ("logistic C=1", "irt 16"),
    "ensemble logistic C=3 + irt 16 + knn 80": ("logistic C=3", "irt 16", "knn 80"),
}


def curve(quality: Floats, cost: Floats, table: RoutingTable) -> list[tuple[float, float, float]]:
    """(lam, mean quality, mean cost) of argmax(quality - lam * cost) on the table."""
    rows = np.arange(len(table))
    points = []
    for lam in lambda_grid(table.cost.mean(axis=0), 161):
        choice = np.argmax(quality - lam * cost, axis=1)
        points.append(
            (float(lam), table.quality[rows, choice].mean(), table.cost[rows, choice].mean())
        )
    return points


def score(points: list[tuple[float, float, float]], table: RoutingTable) -> dict[str, float]:
    """AIQ; the hull's quality at half of GPT-4's cost less GPT-4's quality (the target
    is >= 0); the cost share of GPT-4 at which the hull reaches its quality (None: never)."""
    _, qualities, costs = zip(*points, strict=True)
    single_cost, single_quality = table.cost.mean(axis=0), table.quality.mean(axis=0)
    gpt4 = table.members.index(GPT4)
    aiq = metrics.aiq(costs, qualities, float(single_cost.min()), float(single_cost.max()))
    half = metrics.hull_at(metrics.hull(costs, qualities), 0.5 * float(single_cost[gpt4]))
    reach = metrics.cost_to_reach(costs, qualities, float(single_quality[gpt4]))
    return {
        "aiq": aiq,
        "gap_to_gpt4_at_half_its_cost": half - float(single_quality[gpt4]),
        "gpt4_cost_share": -1.0 if reach is None else reach / float(single_cost[gpt4]),
    }


def wrong_calls(quality: Floats, cost: Floats, table: RoutingTable, lam: float) -> dict[str, Any]:
    """Per task at ``lam``: the calls sorted into kinds (right and cheapest, overpaid,
    missed, hopeless), quality and cost against GPT-4's, and the members chosen most."""
    choice = np.argmax(quality - lam * cost, axis=1)
    rows = np.arange(len(table))
    got = table.quality[rows, choice]
    paid = table.cost[rows, choice]
    best = table.quality.max(axis=1)
    cheaper_right = ((table.quality >= got[:, None]) & (table.cost < paid[:, None])).any(axis=1)
    kinds = np.where(
        best == 0, "hopeless",
        np.where(got < best, "missed", np.where(cheaper_right, "overpaid", "right and cheapest")),
    )  # fmt: skip
    labels = np.array(table.labels or [""] * len(table))
    gpt4 = table.members.index(GPT4)
    out: dict[str, Any] = {}
    for task in sorted(set(labels)):
        mine = labels == task
        names, counts = np.unique(choice[mine], return_counts=True)
        top = sorted(zip(counts, names, strict=True), reverse=True)[:3]
        out[task] = {
            "prompts": int(mine.sum()),
            "kinds": {str(k): int((kinds[mine] == k).sum()) for k in sorted(set(kinds[mine]))},
            "quality": round(float(got[mine].mean()), 3),
            "gpt4_quality": round(float(table.quality[mine, gpt4].mean()), 3),
            "cost_usd": float(paid[mine].mean()),
            "gpt4_cost_usd": float(table.cost[mine, gpt4].mean()),
            "chosen": {table.members[int(m)]: round(int(c) / int(mine.sum()), 3) for c, m in top},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", nargs="+", default=["minilm-static", "minilm"])
    args = parser.parse_args()
    train = routerbench(default_root()).train
    folds = np.random.default_rng(0).permutation(len(train)) % FOLDS
    shape = train.quality.shape
    # out-of-fold predictions for every train prompt: (quality, mean cost, neighbours' cost)
    oof: dict[str, tuple[Floats, Floats, Floats]] = {}
    for encoder in args.encoders:
        CachedEncoder(get_encoder(encoder)).encode(train.prompts)  # every fold slices these
        for fold in range(FOLDS):
            rows = np.flatnonzero(folds == fold)
            fit, held = train.subset(np.flatnonzero(folds != fold)), train.subset(rows)
            predicted: dict[str, tuple[Floats, Floats, Floats]] = {}
            for name, make in CANDIDATES.items():
                router = make(encoder)
                router.cost_model, router.seed = "neighbours", fold
                router.fit(fit)
                vectors = router.embed(held.prompts, cache=True)
                quality = router.predicted_quality(vectors)
                mean = np.broadcast_to(router.mean_cost_, quality.shape)
                predicted[name] = (quality, mean, router.expected_cost(vectors))
            # reference: each task's mean quality per member (the task read from its label)
            task_of = np.array(held.labels or [""] * len(held))
            fit_tasks = np.array(fit.labels or [""] * len(fit))
            by_task = np.stack([fit.quality[fit_tasks == t].mean(axis=0) for t in task_of])
            last = predicted[next(iter(CANDIDATES))]
            predicted["task only (reference)"] = (by_task, last[1], last[2])
            for name, parts in ENSEMBLES.items():
                quality = np.mean([predicted[p][0] for p in parts], axis=0)
                predicted[name] = (quality, predicted[parts[0]][1], predicted[parts[0]][2])
            for name, parts3 in predicted.items():
                key = f"{name} | {encoder}"
                slot = oof.setdefault(key, (np.zeros(shape), np.zeros(shape), np.zeros(shape)))
                for target, part in zip(slot, parts3, strict=True):
                    target[rows] = part
            print(f"{encoder} fold {fold + 1}/{FOLDS}", flush=True)
    results: dict[str, dict[str, float]] = {}  # AIQ, gap at half GPT-4's cost, cost share
    for name, (quality, mean, near) in oof.items():
        for cost_model, cost in (("mean", mean), ("neighbours", near)):
            model, encoder = name.split(" | ")
            results[f"{model} | cost {cost_model} | {encoder}"] = score(
                curve(quality, cost, train), train
            )
    ranked = sorted(results.items(), key=lambda kv: -kv[1]["aiq"])
    best = next(k for k, _ in ranked if "reference" not in k)
    name, cost_model, encoder = best.split(" | ")
    quality, mean, near = oof[f"{name} | {encoder}"]
    cost = near if cost_model == "cost neighbours" else mean
    points = curve(quality, cost, train)
    half = 0.5 * float(train.cost[:, train.members.index(GPT4)].mean())
    lam = max((p for p in points if p[2] <= half), key=lambda p: p[1])[0]
    figures = {
        "command": "PYTHONPATH=src python bench/routerbench_dev.py",
        "protocol": f"out-of-fold predictions ({FOLDS} folds) over the train split; test unread",
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "ranked": [{"router": k, **{m: round(v, 4) for m, v in r.items()}} for k, r in ranked],
        "best": best,
        "lam_at_half_gpt4_cost": lam,
        "calls_of_best_at_half_gpt4_cost": wrong_calls(quality, cost, train, lam),
    }
    out = ROOT / "bench" / "results" / "routerbench_dev.json"
    out.write_text(json.dumps(figures, indent=1) + "\n")
    for key, r in ranked[:30]:
        print(
            f"{r['aiq']:.4f}  at half GPT-4's cost {r['gap_to_gpt4_at_half_its_cost']:+.3f} "
            f"against its quality  {key}"
        )
    print(json.dumps(figures["calls_of_best_at_half_gpt4_cost"], indent=1))


if __name__ == "__main__":
    main()
