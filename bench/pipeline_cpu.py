"""CPU per request of the request path itself (pipeline, outcome, ledger), this code
against another checkout's, in one run.

Each sample is a fresh process that opens a one-member team (the calculator, SQLite
ledger with the audit chain, metrics on), answers ``--warmup`` requests, then times
``--requests`` calls of ``Pipeline.complete`` with ``time.process_time`` (the main
thread and the ledger's writer thread). No HTTP: what the gateway's HTTP layer adds is
``bench/gateway_overhead.py``'s. Sides alternate ``--rounds`` times so that a burst of
load on a shared machine cannot favour one; the minimum and the median are reported.

    python bench/pipeline_cpu.py --baseline OLD_CHECKOUT/src [--rounds 5]
        [--requests 2000] [--durability full]

Prints a table and writes ``bench/results/pipeline_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

SAMPLE = """
import asyncio, json, sys, tempfile, time
from pathlib import Path
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request
from pinfactory.team import parse_team

requests, warmup, durability = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ledger = Path(tempfile.mkdtemp()) / "ledger.db"
team = parse_team(
    "name: cpu\\n"
    "members: [{name: calc, kind: calculator, price: {per_call: 0.001}}]\\n"
    "routing: {kind: rules, fallback: calc}\\n"
    f"ledger: {{path: '{ledger}', durability: {durability}}}\\n",
    "cpu.yaml",
    {},
)


async def main() -> None:
    async with open_pipeline(team) as pipeline:
        for _ in range(warmup):
            await pipeline.complete(Request.from_text("2 + 2"))
        started = time.process_time()
        for _ in range(requests):
            await pipeline.complete(Request.from_text("2 + 2"))
        spent = time.process_time() - started
    print(json.dumps({"cpu_ms_per_request": spent / requests * 1000}))


asyncio.run(main())
"""


def sample(src: Path, requests: int, warmup: int, durability: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [sys.executable, "-c", SAMPLE, str(requests), str(warmup), durability],
            env=env,
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
        )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["cpu_ms_per_request"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout's src/")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--durability", choices=["full", "group"], default="full")
    parser.add_argument("--out", type=Path, default=RESULTS / "pipeline_cpu.json")
    args = parser.parse_args()
    sides = {"baseline": args.baseline.resolve(), "this": ROOT / "src"}
    found: dict[str, list[float]] = {name: [] for name in sides}
    with Progress(transient=True) as progress:
        task = progress.add_task("samples", total=args.rounds * len(sides))
        for _ in range(args.rounds):
            for name, src in sides.items():
                found[name].append(sample(src, args.requests, args.warmup, args.durability))
                progress.advance(task)
    table = Table(title=f"CPU per request, ms (durability {args.durability})")
    for column in ("side", "min", "median", "samples"):
        table.add_column(column)
    rows = []
    for name, values in found.items():
        row = {
            "side": name,
            "min_ms": round(min(values), 4),
            "median_ms": round(statistics.median(values), 4),
            "samples_ms": [round(v, 4) for v in values],
        }
        rows.append(row)
        table.add_row(name, f"{row['min_ms']:.3f}", f"{row['median_ms']:.3f}",
                      ", ".join(f"{v:.3f}" for v in values))  # fmt: skip
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "pipeline_cpu",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
                "command": " ".join(["python", "bench/pipeline_cpu.py", *sys.argv[1:]]),
                "settings": vars(args) | {"baseline": str(args.baseline), "out": str(args.out)},
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
