"""Audited requests per second the ledger sustains, and the latency it adds per request.

Each simulated request is what the pipeline writes for an answered call: one
request row plus four audit-chain entries (request, decision, call, response)
in one commit. ``--concurrency`` requests are in flight at once, as on a busy
gateway. Runs SQLite (a file in a temporary directory) and, when a DSN is
given or ``scripts/postgres.sh`` can start one, PostgreSQL, each with
``durability: full`` (one commit per request) and ``group`` (one commit for
all the requests that queued during the previous one).

    python bench/ledger_throughput.py [--requests 2000] [--concurrency 64] [--pg-dsn DSN]

Prints a table and writes bench/results/ledger_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from pinfactory.ledger import AuditEvent, LedgerEntry, open_ledger
from pinfactory.ledger.chain import verify_ledger

ROOT = Path(__file__).resolve().parents[1]


def request(i: int) -> tuple[LedgerEntry, list[AuditEvent]]:
    rid = f"req_bench_{i:08d}"
    entry = LedgerEntry(
        rid,
        "sales",
        "alice",
        "auto",
        "calculator",
        "rules",
        "rule 'arithmetic' matched",
        12,
        9,
        Decimal("0.000001"),
        0.4,
        200,
        tags=("bench",),
    )
    events = [
        AuditEvent("request", rid, {"unit": "sales", "user": "alice", "prompt_tokens": 12}),
        AuditEvent(
            "decision",
            rid,
            {
                "member": "calculator",
                "scores": {"calculator": 1.0},
                "reason": "rule 'arithmetic' matched",
                "router": "rules",
            },
        ),
        AuditEvent(
            "call",
            rid,
            {
                "member": "calculator",
                "input_tokens": 12,
                "output_tokens": 9,
                "cost_usd": "0.000001",
            },
        ),
        AuditEvent("response", rid, {"status": 200, "member": "calculator"}),
    ]
    return entry, events


async def run(location: str, durability: str, requests: int, concurrency: int) -> dict[str, Any]:
    ledger = open_ledger(location, durability)  # type: ignore[arg-type]
    await ledger.open()
    latencies: list[float] = []
    work = iter(range(requests))

    async def worker() -> None:
        for i in work:
            entry, events = request(i)
            began = time.perf_counter()
            await ledger.record(entry, events)
            latencies.append((time.perf_counter() - began) * 1000)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        commits = ledger.commits  # type: ignore[attr-defined]
        report = await verify_ledger(ledger)
    finally:
        await ledger.close()
    assert report.intact and report.checked == requests * 4, report
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests_per_s": round(requests / elapsed, 1),
        "p50_ms": round(cuts[49], 3),
        "p99_ms": round(cuts[98], 3),
        "commits": commits,
        "requests_per_commit": round(requests / commits, 1),
        "audit_entries_verified": report.checked,
    }


def postgres_dsn(given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("PINFACTORY_TEST_PG_DSN"):
        return os.environ["PINFACTORY_TEST_PG_DSN"]
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts" / "postgres.sh")],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout.strip().splitlines()[-1]


def fresh_schema(dsn: str) -> str:
    schema = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


def drop_schema(dsn: str, location: str) -> None:
    schema = location.rsplit("%3D", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--pg-dsn", default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    dsn = postgres_dsn(args.pg_dsn)
    for concurrency in args.concurrency:
        # one request at a time shows the latency a commit adds; fewer suffice
        requests = args.requests if concurrency > 1 else min(args.requests, 300)
        for durability in ("full", "group"):
            name = f"{durability}/c{concurrency}"
            with tempfile.TemporaryDirectory() as tmp:
                location = str(Path(tmp) / "ledger.db")
                results[f"sqlite/{name}"] = asyncio.run(
                    run(location, durability, requests, concurrency)
                )
            if dsn:
                location = fresh_schema(dsn)
                try:
                    results[f"postgresql/{name}"] = asyncio.run(
                        run(location, durability, requests, concurrency)
                    )
                finally:
                    drop_schema(dsn, location)
    print(f"{'ledger':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'req/commit':>12}")
    for name, r in results.items():
        print(
            f"{name:<22}{r['requests_per_s']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}"
            f"{r['requests_per_commit']:>12}"
        )
    out = ROOT / "bench" / "results" / "ledger_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "audit_entries_per_request": 4,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
