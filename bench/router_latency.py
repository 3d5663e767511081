"""Decision latency of every router kind: p50/p99 microseconds and decisions/s.

    PYTHONPATH=src python bench/router_latency.py [--json]

Rules and semantic routers use the default team; the learned routers are
trained on RouterBench's train split (../shared/data/routerbench) and timed
on its test prompts. Writes bench/results/router_latency.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pinfactory.lab.datasets import default_root
from pinfactory.request import Request
from pinfactory.routing import build_router
from pinfactory.routing.classifier import ClassifierRouter
from pinfactory.routing.gumbel import GumbelRouter
from pinfactory.routing.hybrid import HybridRouter
from pinfactory.routing.learned import LearnedRouter
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.semantic import SemanticRouter
from pinfactory.routing.table_files import load_routerbench
from pinfactory.team import load_team

ROOT = Path(__file__).resolve().parents[1]
ROUTELLM_MF_PER_S = 155.0
QUERIES = [
    "What is the capital of France?",
    "What is 17% of 2,340?",
    "where is my order #1007",
    "Write a python function that merges two sorted lists",
    "has my package shipped yet? it was supposed to come Monday",
    "hello there, how are you today",
    "Compare the strategies of Rome and Carthage in the Second Punic War",
    "tell me a joke about cats",
]


def timings(
    decide: Callable[[Any], object], items: Sequence[Any], per_call: int = 1
) -> dict[str, float]:
    for item in items[:20]:
        decide(item)
    samples = []
    for _ in range(max(1, 2000 // len(items))):
        for item in items:
            start = time.perf_counter_ns()
            decide(item)
            samples.append((time.perf_counter_ns() - start) / 1000 / per_call)
    values = np.asarray(samples)
    return {
        "p50_us": round(float(np.percentile(values, 50)), 2),
        "p99_us": round(float(np.percentile(values, 99)), 2),
        "decisions_per_s": round(1e6 / float(values.mean()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args()
    team = load_team(None, {})
    hybrid = build_router(team)
    assert isinstance(hybrid, HybridRouter) and isinstance(hybrid.second, SemanticRouter)
    requests = [Request.from_text(q) for q in QUERIES]
    results: dict[str, Any] = {
        "rules": timings(hybrid.rules.decide, requests),
        "semantic": timings(hybrid.second.decide, requests),
        "hybrid": timings(hybrid.decide, requests),
    }
    batch = [requests * 8]  # 64 requests a call
    results["semantic_batch"] = timings(hybrid.second.decide_batch, batch * 50, per_call=64)
    train, test = load_routerbench(default_root())
    prompts = [Request.from_text(p) for p in test.prompts[:200]]
    learned: dict[str, LearnedRouter] = {
        "classifier": ClassifierRouter("logistic"),
        "classifier_mlp": ClassifierRouter("mlp"),
        "classifier_knn": ClassifierRouter("knn"),
        "quality": QualityRouter(),
        "quality_knn": QualityRouter("knn"),
        "gumbel": GumbelRouter(),
    }
    for name, router in learned.items():
        router.fit(train)
        results[name] = timings(router.decide, prompts)
    results["routellm_mf_reference_per_s"] = ROUTELLM_MF_PER_S
    results["ratio_to_routellm_mf"] = {
        k: round(v["decisions_per_s"] / ROUTELLM_MF_PER_S, 1)
        for k, v in results.items()
        if isinstance(v, dict) and "decisions_per_s" in v
    }
    out = ROOT / "bench" / "results" / "router_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=None if args.json else 2))
    if not args.json:
        for k, ratio in results["ratio_to_routellm_mf"].items():
            print(f"{k:16} {ratio:>8}x RouteLLM MF's {ROUTELLM_MF_PER_S:g} decisions/s")


if __name__ == "__main__":
    main()
