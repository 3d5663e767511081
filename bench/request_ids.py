"""What the order of request ids costs the ledger: bytes written, write calls and CPU per
request, with ids in arrival order (``new_request_id``: milliseconds first) against the
random ids before them (96 random bits), on a ledger that already holds requests.

The ledger indexes the request id twice (``requests`` and ``audit``). Random ids put each
row's index entries on a page anywhere in the index, so a commit rewrites about one page
per row; ids in arrival order land at the index's right edge, where a batch's rows share
a few pages. Each run is a fresh process: a one-member team (the calculator), a SQLite
ledger with ``--durability`` (default ``journal``), ``--prefill`` requests answered first
(``--concurrency`` at a time), then ``--requests`` measured (``/proc/self/io`` for bytes
and write calls, ``os.times`` for CPU, every thread). The two kinds of id alternate
``--rounds`` times.

    python bench/request_ids.py [--prefill 50000] [--requests 20000] [--concurrency 32]
        [--rounds 2]

Prints a table and writes ``bench/results/request_ids.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

import run_record  # bench/ is on the path when this script runs

ROOT = Path(__file__).resolve().parents[1]

RUN = """
import asyncio, json, os, random, sys, tempfile, time
from pathlib import Path
import pinfactory.request as ids

kind, durability, prefill, count, concurrency = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
if kind == "random":  # the ids before arrival order: 96 random bits
    draw = random.Random()
    ids.new_request_id = lambda: f"req_{draw.getrandbits(96):024x}"
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request
from pinfactory.team import parse_team

ledger = Path(tempfile.mkdtemp()) / "ledger.db"
team = parse_team(
    "name: ids\\n"
    "members: [{name: calc, kind: calculator, price: {per_call: 0.001}}]\\n"
    "routing: {kind: rules, fallback: calc}\\n"
    f"ledger: {{path: '{ledger}', durability: {durability}}}\\n",
    "ids.yaml",
    {},
)


def io():
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["syscw"])


async def main():
    async with open_pipeline(team) as pipeline:
        async def answer(n):
            for _ in range(n):
                await pipeline.complete(Request.from_text("2 + 2"))

        await asyncio.gather(*(answer(prefill // concurrency) for _ in range(concurrency)))
        await pipeline.ledger.entries(limit=1)  # every write before it committed
        commits, (written, calls), cpu = pipeline.ledger.commits, io(), os.times()
        await asyncio.gather(*(answer(count // concurrency) for _ in range(concurrency)))
        await pipeline.ledger.entries(limit=1)
        after, (written_after, calls_after) = os.times(), io()
        n = count // concurrency * concurrency
        print(json.dumps({
            "cpu_ms": (after.user + after.system - cpu.user - cpu.system) / n * 1000,
            "system_ms": (after.system - cpu.system) / n * 1000,
            "kib_written": (written_after - written) / n / 1024,
            "write_calls": (calls_after - calls) / n,
            "requests_per_commit": n / max(1, pipeline.ledger.commits - commits),
        }))


asyncio.run(main())
"""


def run(kind: str, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", RUN, kind, args.durability, str(args.prefill),
               str(args.requests), str(args.concurrency)]  # fmt: skip
    found = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(found.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--durability", choices=["full", "group", "journal"], default="journal")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "request_ids.json")
    args = parser.parse_args()
    found: dict[str, list[dict[str, float]]] = {"ordered": [], "random": []}
    console = Console()
    for round_ in range(args.rounds):
        for kind in ("ordered", "random") if round_ % 2 == 0 else ("random", "ordered"):
            found[kind].append(run(kind, args))
            console.print(f"round {round_ + 1}/{args.rounds} {kind}: {found[kind][-1]}")
    medians = {
        kind: {key: round(statistics.median(r[key] for r in runs), 4) for key in runs[0]}
        for kind, runs in found.items()
    }
    table = Table(title=f"Request ids, durability {args.durability}, {args.prefill:,} prefilled")
    for column in ("ids", "CPU ms/request", "system ms", "KiB written", "write calls",
                   "requests/commit"):  # fmt: skip
        table.add_column(column)
    for kind, m in medians.items():
        table.add_row(kind, f"{m['cpu_ms']:.3f}", f"{m['system_ms']:.3f}",
                      f"{m['kib_written']:.1f}", f"{m['write_calls']:.2f}",
                      f"{m['requests_per_commit']:.0f}")  # fmt: skip
    console.print(table)
    report = run_record.header("request_ids")
    report.update(settings=vars(args) | {"out": str(args.out)}, median=medians, runs=found)
    run_record.write(args.out, report)


if __name__ == "__main__":
    main()
