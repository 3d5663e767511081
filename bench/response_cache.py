"""Response cache on a replayed log: hit rate, saving, wrong-hit rate, hit latency.

    PYTHONPATH=src python bench/response_cache.py [--max-wrong 0.05] [--repeats 0.2]
        [--price 0.005] [--no-model] [--json]

The log is CLINC150's test split (4,500 in-scope queries, 30 per intent, each intent's
queries written as paraphrases of one request), shuffled (seed 0), with a share
``--repeats`` of requests being exact repeats of an earlier one, as real logs have. Every
request goes to the same member at ``--price`` USD a call (GPT-4's mean RouterBench cost);
a miss calls it and stores the answer, a hit costs nothing (the static embedding runs
locally). A semantic hit is *wrong* when the stored answer was for another intent.

The similarity threshold is calibrated on the validation split (3,000 queries, its own
log): the lowest threshold whose hits there are wrong at most ``--max-wrong`` of the time
(``cache.calibrate_threshold``). The test log is then replayed at that threshold and at a
few fixed ones for the curve. Hit latency: the cache lookup alone (exact and semantic
hits, microseconds), and unless ``--no-model``, a request through the pipeline with the
local Gemma model, missed then hit (milliseconds; with ``--no-model`` the last measured
figures are kept, marked ``from_earlier_run``). Near misses: 35 hand-written wording pairs
(``bench/data/cache_near_misses.jsonl``), 20 that ask something else in nearly the same
words and 15 true paraphrases, served or not at a few thresholds, with the wording guard and
with numbers alone (as before it). Writes bench/results/response_cache.json and
response_cache.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from pinfactory.cache import CacheSpec, ResponseCache, calibrate_threshold
from pinfactory.lab.datasets import default_root
from pinfactory.members.base import Completion, Usage
from pinfactory.outcome import Answer
from pinfactory.paraphrase import anchors_of
from pinfactory.request import Request
from pinfactory.routing.base import Decision

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DECISION = Decision(member="frontier", reason="bench", router="rules")
NEAR_MISSES = ROOT / "bench" / "data" / "cache_near_misses.jsonl"


def replay_log(items: list[tuple[str, str]], repeats: float, seed: int) -> list[tuple[str, str]]:
    """The queries shuffled, with a ``repeats`` share of exact repeats of earlier ones."""
    rng = np.random.default_rng(seed)
    order = [items[i] for i in rng.permutation(len(items))]
    log: list[tuple[str, str]] = []
    extra = round(len(order) * repeats / (1 - repeats))
    repeat_at = set(rng.choice(np.arange(1, len(order) + extra), size=extra, replace=False))
    fresh = iter(order)
    for position in range(len(order) + extra):
        if position in repeat_at and log:
            log.append(log[int(rng.integers(len(log)))])
        else:
            log.append(next(fresh))
    return log


def answered(text: str, intent: str, price: Decimal) -> Answer:
    completion = Completion(intent, Usage(len(text) // 4, 20), price, "m")
    return Answer(Request.from_text(text), DECISION, completion, 0.0)


@dataclass
class Replay:
    requests: int = 0
    exact: int = 0
    semantic: int = 0
    wrong: int = 0
    spent: Decimal = Decimal(0)
    saved: Decimal = Decimal(0)

    def figures(self, price: Decimal) -> dict[str, Any]:
        hits = self.exact + self.semantic
        return {
            "requests": self.requests,
            "hit_rate": round(hits / self.requests, 4),
            "exact_hit_rate": round(self.exact / self.requests, 4),
            "semantic_hit_rate": round(self.semantic / self.requests, 4),
            "wrong_hit_rate": round(self.wrong / hits, 4) if hits else 0.0,
            "wrong_per_request": round(self.wrong / self.requests, 4),
            "spent_usd": float(self.spent),
            "saved_usd": float(self.saved),
            "saving": round(float(self.saved / (price * self.requests)), 4),
        }


def replay(log: list[tuple[str, str]], spec: CacheSpec, price: Decimal) -> Replay:
    cache = ResponseCache(spec)
    out = Replay()
    for text, intent in log:
        out.requests += 1
        hit = cache.lookup(Request.from_text(text), DECISION)
        if hit is None:
            out.spent += price
            cache.store(answered(text, intent, price))
            continue
        out.saved += hit.record.saved_usd
        if hit.record.kind == "exact":
            out.exact += 1
        else:
            out.semantic += 1
            out.wrong += hit.completion.text != intent
    return out


def nearest_log(log: list[tuple[str, str]]) -> tuple[list[float], list[bool]]:
    """For each request with an earlier one, the best similarity and whether it was right
    (every request stored: the distribution a threshold is chosen from)."""
    cache = ResponseCache(CacheSpec(exact=False, semantic=True, threshold=1e-6, max_entries=10**6))
    sims, right = [], []
    price = Decimal("0.001")
    for text, intent in track(log, description="calibrating"):
        hit = cache.lookup(Request.from_text(text), DECISION)
        if hit is not None and hit.record.similarity < 0.9999:  # exact repeats aside
            sims.append(hit.record.similarity)
            right.append(hit.completion.text == intent)
        cache.store(answered(text, intent, price))
    return sims, right


def near_misses(thresholds: list[float]) -> list[dict[str, Any]]:
    """Hand-written wording pairs (``bench/data/cache_near_misses.jsonl``, none from a test):
    close wordings that ask something else, and true paraphrases. For each threshold: how
    many of the first the cache serves (wrong hits) and of the second (right hits), with the
    wording guard (:mod:`pinfactory.paraphrase`) and, as before it, numbers alone."""
    pairs = [json.loads(line) for line in NEAR_MISSES.read_text().splitlines() if line.strip()]
    encoder = ResponseCache(CacheSpec(semantic=True)).encoder
    rows = []
    for threshold in thresholds:
        counts = {"wrong": 0, "wrong_numbers_only": 0, "right": 0, "right_numbers_only": 0}
        for pair in pairs:
            cache = ResponseCache(CacheSpec(semantic=True, threshold=threshold))
            cache.store(answered(pair["stored"], "stored", Decimal("0.005")))
            served = cache.lookup(Request.from_text(pair["asked"]), DECISION) is not None
            vectors = encoder.encode([pair["stored"], pair["asked"]])
            close = float(vectors[0] @ vectors[1]) >= threshold
            stored, asked = anchors_of(pair["stored"]), anchors_of(pair["asked"])
            before = close and stored.numbers == asked.numbers  # the check before the guard
            kind = "right" if pair["same_answer"] else "wrong"
            counts[kind] += served
            counts[f"{kind}_numbers_only"] += before
        rows.append({
            "threshold": threshold,
            "pairs_asking_something_else": sum(not p["same_answer"] for p in pairs),
            "paraphrase_pairs": sum(p["same_answer"] for p in pairs),
            **counts,
        })  # fmt: skip
    return rows


def lookup_latency(log: list[tuple[str, str]], threshold: float) -> dict[str, float]:
    """Microseconds per hit, exact and semantic, on a warm cache of the whole log."""
    cache = ResponseCache(CacheSpec(semantic=True, threshold=threshold, max_entries=10**6))
    for text, intent in log:
        cache.store(answered(text, intent, Decimal("0.001")))
    timings: dict[str, list[float]] = {"exact": [], "semantic": []}
    for text, _ in log[:500]:
        for kind, asked in (("exact", text), ("semantic", text.rstrip("?.! ") + " please")):
            started = time.perf_counter()
            hit = cache.lookup(Request.from_text(asked), DECISION)
            elapsed = (time.perf_counter() - started) * 1e6
            if hit is not None and hit.record.kind == kind:
                timings[kind].append(elapsed)
    return {
        f"{kind}_hit_us_median": round(statistics.median(t), 1) for kind, t in timings.items() if t
    } | {"entries": len(cache)}


def pipeline_latency(queries: list[str]) -> dict[str, float]:
    """Milliseconds through the pipeline with the local model: a miss, then its repeat."""
    from pinfactory.pipeline import open_pipeline
    from pinfactory.team import parse_team

    folder = Path(tempfile.mkdtemp())
    team = parse_team(
        f"""
name: cached-local
members:
  - {{name: local, kind: llamacpp, max_output_tokens: 32}}
routing: {{kind: rules, fallback: local}}
cache: {{semantic: true}}
ledger: {{path: '{folder / "ledger.db"}'}}
""",
        "bench.yaml",
        {},
    )

    async def run() -> dict[str, float]:
        miss, hit = [], []
        async with open_pipeline(team) as pipeline:
            await pipeline.complete(Request.from_text("warm up"))
            for query in track(queries, description="local model, miss then hit"):
                for times in (miss, hit):
                    started = time.perf_counter()
                    answer = await pipeline.complete(Request.from_text(query))
                    times.append((time.perf_counter() - started) * 1000)
                    assert (answer.cache is None) == (times is miss)
        return {
            "miss_ms_median": round(statistics.median(miss), 1),
            "hit_ms_median": round(statistics.median(hit), 2),
            "queries": len(queries),
        }

    return asyncio.run(run())


def plot(curve: list[dict[str, Any]], chosen: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [c["threshold"] for c in curve]
    ax.plot(xs, [c["hit_rate"] for c in curve], "o-", label="hit rate")
    ax.plot(xs, [c["saving"] for c in curve], "s--", label="saving (share of spend)")
    ax.plot(xs, [c["wrong_hit_rate"] for c in curve], "^-", label="wrong hits / hits")
    ax.axvline(chosen, color="grey", linestyle=":", label=f"calibrated {chosen:.3f}")
    ax.set_xlabel("semantic similarity threshold")
    ax.set_title("Response cache on CLINC150 test (replayed, 20% exact repeats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-wrong", type=float, default=0.05)
    parser.add_argument("--repeats", type=float, default=0.2)
    parser.add_argument("--price", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    price = Decimal(str(args.price))
    data = json.loads((default_root() / "clinc150" / "data_full.json").read_text())
    val = [(t, i) for t, i in data["val"]]
    test = [(t, i) for t, i in data["test"]]

    sims, right = nearest_log(replay_log(val, 0.0, args.seed))
    threshold = calibrate_threshold(sims, right, args.max_wrong)
    log = replay_log(test, args.repeats, args.seed)
    result: dict[str, Any] = {
        "log": {"source": "clinc150 test", "requests": len(log), "repeats": args.repeats},
        "calibration": {
            "source": "clinc150 val",
            "lookups": len(sims),
            "max_wrong": args.max_wrong,
            "threshold": round(threshold, 4),
        },
        "price_usd": float(price),
    }
    exact_only = replay(log, CacheSpec(semantic=False, max_entries=10**6), price)
    result["exact_only"] = exact_only.figures(price)
    curve = []
    for t in sorted({0.8, 0.85, 0.9, 0.95, 0.98, round(threshold, 4)}):
        spec = CacheSpec(semantic=True, threshold=t, max_entries=10**6)
        curve.append({"threshold": t, **replay(log, spec, price).figures(price)})
    result["curve"] = curve
    result["calibrated"] = next(c for c in curve if c["threshold"] == round(threshold, 4))
    result["near_misses"] = near_misses(sorted({0.8, 0.9, round(threshold, 4)}))
    result["lookup_latency"] = lookup_latency(log, threshold)
    if not args.no_model:
        result["pipeline_latency"] = pipeline_latency([t for t, _ in test[:10]])
    elif (RESULTS / "response_cache.json").is_file():  # keep the last measured one, marked
        earlier = json.loads((RESULTS / "response_cache.json").read_text())
        if "pipeline_latency" in earlier:
            result["pipeline_latency"] = {**earlier["pipeline_latency"], "from_earlier_run": True}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "response_cache.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(curve, threshold, RESULTS / "response_cache.png")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    c = result["calibrated"]
    print(f"threshold {threshold:.3f} (val: wrong hits <= {args.max_wrong:.0%})")
    print(
        f"test log {len(log)} requests: hit rate {c['hit_rate']:.1%} (exact "
        f"{c['exact_hit_rate']:.1%}, semantic {c['semantic_hit_rate']:.1%}), wrong hits "
        f"{c['wrong_hit_rate']:.1%} of hits, saving {c['saving']:.1%} (${c['saved_usd']:.2f})"
    )
    print(f"exact only: hit rate {exact_only.figures(price)['hit_rate']:.1%}")
    for row in result["near_misses"]:
        print(
            f"near misses at {row['threshold']}: wrong hits {row['wrong']}/"
            f"{row['pairs_asking_something_else']} (numbers alone: {row['wrong_numbers_only']}), "
            f"paraphrases served {row['right']}/{row['paraphrase_pairs']} (numbers alone: "
            f"{row['right_numbers_only']})"
        )
    print("lookup latency:", result["lookup_latency"])
    if "pipeline_latency" in result:
        print("pipeline latency:", result["pipeline_latency"])


if __name__ == "__main__":
    main()
