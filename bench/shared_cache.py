"""Hit latency of the response cache shared between workers through Redis.

    PYTHONPATH=src python bench/shared_cache.py [--redis redis://127.0.0.1:56379/0]

Two caches (two workers) share one Redis (``scripts/redis.sh`` starts one). Worker A
answers 700 CLINC150 test queries and saves them (``ResponseCache.save``), which worker B
reads; then for each of 300 more, A saves it and B looks up (``find``): the repeat A
stored just now (read from Redis: two round trips), the same repeat again (in B's memory:
one round trip to check for new entries), and a paraphrase (semantic, static MiniLM; the
entry matrix is rebuilt after each new entry). Medians in microseconds, beside the same
lookups on a cache that is not shared. Writes ``bench/results/shared_cache.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path

from pinfactory.cache import CacheSpec, ResponseCache
from pinfactory.lab.datasets import default_root
from pinfactory.members.base import Completion, Usage
from pinfactory.outcome import Answer
from pinfactory.reliability.state import RedisState
from pinfactory.request import Request
from pinfactory.routing.base import Decision

ROOT = Path(__file__).resolve().parents[1]
DECISION = Decision(member="frontier", reason="bench", router="rules")
SPEC = CacheSpec(semantic=True, threshold=0.9, max_entries=10**6)


def answered(text: str, intent: str) -> Answer:
    request = Request.from_text(text)
    return Answer(request, DECISION, Completion(intent, Usage(9, 3), Decimal("0.005"), "m"), 1.0)


async def timed(cache: ResponseCache, text: str, kind: str) -> float | None:
    started = time.perf_counter()
    hit = await cache.find(Request.from_text(text), DECISION)
    elapsed = (time.perf_counter() - started) * 1e6
    return elapsed if hit is not None and hit.record.kind == kind else None


async def measure(url: str, queries: list[tuple[str, str]]) -> dict[str, object]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    stores = [RedisState(url, namespace=namespace) for _ in range(2)]
    for store in stores:
        await store.open()
    writer, reader, alone = ResponseCache(SPEC), ResponseCache(SPEC), ResponseCache(SPEC)
    writer.share(stores[0])
    reader.share(stores[1])
    warm, measured = queries[:-300], queries[-300:]
    for text, intent in warm:
        await writer.save(answered(text, intent))
        alone.store(answered(text, intent))
    await reader.find(Request.from_text("catch up"), DECISION)  # reads the warm entries
    timings: dict[str, list[float]] = {}
    for text, intent in measured:
        await writer.save(answered(text, intent))  # another worker answers it just now
        alone.store(answered(text, intent))
        paraphrase = text.rstrip("?.! ") + " please"
        for name, cache, asked, kind in (
            ("shared: exact, stored by the other worker just now", reader, text, "exact"),
            ("shared: exact, already read", reader, text, "exact"),
            ("shared: semantic", reader, paraphrase, "semantic"),
            ("one worker: exact", alone, text, "exact"),
            ("one worker: semantic", alone, paraphrase, "semantic"),
        ):
            elapsed = await timed(cache, asked, kind)
            if elapsed is not None:
                timings.setdefault(name, []).append(elapsed)
    keys = [k async for k in stores[0].client.scan_iter(f"{namespace}:*")]
    if keys:
        await stores[0].client.delete(*keys)
    for store in stores:
        await store.close()
    return {
        "entries": len(queries),
        "hit_us_median": {k: round(statistics.median(v), 1) for k, v in timings.items()},
        "hits_measured": {k: len(v) for k, v in timings.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="")
    args = parser.parse_args()
    url = (
        args.redis
        or subprocess.check_output(["bash", str(ROOT / "scripts" / "redis.sh")], text=True).strip()
    )
    data = json.loads((default_root() / "clinc150" / "data_full.json").read_text())
    queries = [(t, i) for t, i in data["test"][:1000]]
    figures = {
        "command": "PYTHONPATH=src python bench/shared_cache.py",
        **asyncio.run(measure(url, queries)),
    }
    (ROOT / "bench" / "results" / "shared_cache.json").write_text(
        json.dumps(figures, indent=1) + "\n"
    )
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
