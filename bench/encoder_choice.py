"""Static vs full MiniLM embeddings, per router, on two intent sets a new user might bring.

    PYTHONPATH=src python bench/encoder_choice.py [--out runs/encoders] [--workers 1]

The sets: CLINC150's 150 intents dealt round-robin to 18 and to 9 equal-cost specialists
(no out-of-scope class; quality 1 on the intent's owner), in the lab's generic log format,
made from shared/data into the output folder (``tests/lab/new_data.py``, the logs the lab's
new-data tests use). Each router is run twice, with ``encoder: minilm-static`` and
``encoder: minilm``, at 10, 25, 50 and all (40) training examples per member, 3 seeds,
scored on all 4,500 test prompts. Writes the lab's report and ``results.csv`` under
``--out`` and the table per router, encoder and size to
``bench/results/encoder_choice.json`` with the per-query encoding latency of each encoder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pinfactory.embeddings import get_encoder
from pinfactory.lab.datasets import default_root
from pinfactory.lab.experiment import run_grid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.lab.new_data import intent_log  # noqa: E402  (the new-data tests' logs)

ENCODERS = ("minilm-static", "minilm")
ROUTERS: dict[str, dict[str, Any]] = {
    "semantic": {"kind": "semantic"},
    "logistic": {"target": "pinfactory.routing.classifier:ClassifierRouter",
                 "params": {"model": "logistic"}, "seeded": False},
    "knn": {"target": "pinfactory.routing.classifier:ClassifierRouter",
            "params": {"model": "knn", "k": 10}, "seeded": False},
    "quality-logistic": {"target": "pinfactory.routing.quality:QualityRouter",
                         "params": {"model": "logistic"}, "seeded": False},
}  # fmt: skip


def grid(logs: dict[str, Path]) -> dict[str, object]:
    routers = []
    for name, spec in ROUTERS.items():
        for encoder in ENCODERS:
            params = {**spec.get("params", {}), "encoder": encoder}
            tag = "static" if encoder == "minilm-static" else "full"
            routers.append({**spec, "name": f"{name}-{tag}", "params": params})
    return {
        "name": "encoder_choice",
        "description": "Static vs full MiniLM per router on two intent sets.",
        "datasets": [
            {"name": name, "loader": "log", "options": {"path": str(path)}}
            for name, path in logs.items()
        ],
        "per_member": True,
        "train_sizes": [10, 25, 50, "all"],
        "seeds": [0, 1, 2],
        "routers": routers,
    }


def latency_ms(encoder: str, texts: list[str]) -> float:
    model = get_encoder(encoder)
    model.encode(texts[:2])  # load
    times = []
    for text in texts:
        started = time.perf_counter()
        model.encode([text])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "encoders")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    shared = default_root()
    args.out.mkdir(parents=True, exist_ok=True)
    logs = {
        f"intents-{groups}": intent_log(shared, args.out / f"intents-{groups}.csv", groups)
        for groups in (18, 9)
    }
    path = args.out / "encoder_choice.yaml"
    path.write_text(yaml.safe_dump(grid(logs), sort_keys=False))
    started = time.perf_counter()
    run = run_grid(path, args.out / "grid", workers=args.workers)
    seconds = time.perf_counter() - started
    rows = pd.read_csv(run.results)
    rows = rows[rows["family"] != "baseline"]
    rows["base"] = rows["router"].str.rsplit("-", n=1).str[0]
    rows["encoder"] = rows["router"].str.rsplit("-", n=1).str[1]
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for (dataset, base, size, encoder), group in rows.groupby(
        ["dataset", "base", "train_size", "encoder"]
    ):
        entry = table.setdefault(str(dataset), {}).setdefault(str(base), {})
        entry.setdefault(str(size), {})[str(encoder)] = round(float(group["accuracy"].mean()), 4)
    probe = [str(t) for t in pd.read_csv(logs["intents-9"])["prompt"].unique()[:200]]
    figures = {
        "command": "PYTHONPATH=src python bench/encoder_choice.py",
        "seconds": round(seconds, 1),
        "accuracy": table,
        "encode_one_query_ms": {e: latency_ms(e, probe) for e in ENCODERS},
    }
    target = ROOT / "bench" / "results" / "encoder_choice.json"
    target.write_text(json.dumps(figures, indent=1) + "\n")
    for dataset, routers in table.items():
        for base, sizes in routers.items():
            for size, by in sizes.items():
                static, full = by.get("static", float("nan")), by.get("full", float("nan"))
                print(f"{dataset:11s} {base:17s} {size:>4s} static {static:.3f} full {full:.3f}")
    print(json.dumps(figures["encode_one_query_ms"]))


if __name__ == "__main__":
    main()
