"""CPU per request of the request path itself (pipeline, outcome, ledger), this code
against another checkout's, in one run, robust to a shared machine's load.

Each side is one long-lived process that opens a one-member team (the calculator,
SQLite ledger with the audit chain, metrics on) and answers ``--warmup`` requests.
Then, ``--rounds`` times, every side in turn (the order alternates: A B, then B A)
answers a batch of ``--requests`` calls of ``Pipeline.complete``, timed with
``time.process_time`` (every thread of the process: the main thread and the ledger's
writer). A burst of load from a neighbour lands on one or two adjacent batches, so
besides each side's minimum and median over batches, the figure that compares is the
median over rounds of the per-round ratio ``side / baseline`` (with its quartiles).
No HTTP: what the gateway's HTTP layer adds is ``bench/gateway_overhead.py``'s.

``--variant NAME`` adds a side running this code with one suspect taken out, to
measure it on its own in the same alternation (bench-only changes, made by the
sample process after the ledger opens):

- ``no-requests-request``: without the ``requests(request_id)`` index (lookups by id);
- ``no-audit-labels``: without the partial ``audit_labels`` index (the label scan's);
- ``no-new-indexes``: without both (the old path's indexes only).

    python bench/pipeline_cpu.py --baseline OLD_CHECKOUT/src [--rounds 30]
        [--requests 500] [--durability full] [--variant no-new-indexes ...]

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

DROPS = {
    "no-requests-request": ("requests_request",),
    "no-audit-labels": ("audit_labels",),
    "no-new-indexes": ("audit_labels", "requests_request"),
}

SAMPLE = """
import asyncio, json, sqlite3, sys, tempfile, time
from pathlib import Path
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request
from pinfactory.team import parse_team

warmup, durability, drops = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
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
        if drops:
            with sqlite3.connect(ledger) as db:
                for index in drops:
                    db.execute(f"DROP INDEX IF EXISTS {index}")
        for _ in range(warmup):
            await pipeline.complete(Request.from_text("2 + 2"))
        print("ready", flush=True)
        for line in sys.stdin:
            count = int(line)
            if count == 0:
                break
            started = time.process_time()
            for _ in range(count):
                await pipeline.complete(Request.from_text("2 + 2"))
            spent = time.process_time() - started
            print(json.dumps({"cpu_ms_per_request": spent / count * 1000}), flush=True)


asyncio.run(main())
"""


@dataclass
class Side:
    """One long-lived sample process: a checkout's ``src`` and the indexes it drops."""

    name: str
    src: Path
    drops: tuple[str, ...] = ()
    process: subprocess.Popen[str] | None = None

    def start(self, warmup: int, durability: str, folder: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(self.src), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-c", SAMPLE, str(warmup), durability, *self.drops]
        self.process = subprocess.Popen(
            command, env=env, cwd=folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self._line() == "ready", f"{self.name} did not start"

    def batch(self, requests: int) -> float:
        """CPU milliseconds per request over one batch of ``requests``."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{requests}\n")
        self.process.stdin.flush()
        return float(json.loads(self._line())["cpu_ms_per_request"])

    def stop(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.write("0\n")
            self.process.stdin.close()
            self.process.wait(timeout=30)

    def _line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"side {self.name} ended early (exit {self.process.wait()})")
        return line.strip()


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def summary(found: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Per side: min and median CPU per request, and its per-round ratio to the baseline."""
    base = found["baseline"]
    rows = []
    for name, values in found.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        q1, median, q3 = quartiles(ratios)
        rows.append(
            {
                "side": name,
                "min_ms": round(min(values), 4),
                "median_ms": round(statistics.median(values), 4),
                "ratio_to_baseline_median": round(median, 4),
                "ratio_to_baseline_quartiles": [round(q1, 4), round(q3, 4)],
                "samples_ms": [round(v, 4) for v in values],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout's src/")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=500, help="requests per batch")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--durability", choices=["full", "group"], default="full")
    parser.add_argument("--variant", action="append", choices=sorted(DROPS), default=[])
    parser.add_argument("--out", type=Path, default=RESULTS / "pipeline_cpu.json")
    args = parser.parse_args()
    sides = [Side("baseline", args.baseline.resolve()), Side("this", ROOT / "src")]
    sides += [Side(name, ROOT / "src", DROPS[name]) for name in args.variant]
    found: dict[str, list[float]] = {side.name: [] for side in sides}
    with tempfile.TemporaryDirectory() as folder:
        try:
            for side in sides:
                side.start(args.warmup, args.durability, folder)
            with Progress(transient=True) as progress:
                task = progress.add_task("rounds", total=args.rounds)
                for round_ in range(args.rounds):
                    for side in sides if round_ % 2 == 0 else sides[::-1]:
                        found[side.name].append(side.batch(args.requests))
                    progress.advance(task)
        finally:
            for side in sides:
                side.stop()
    rows = summary(found)
    table = Table(title=f"CPU per request, ms (durability {args.durability})")
    for column in ("side", "min", "median", "ratio to baseline (median, quartiles)"):
        table.add_column(column)
    for row in rows:
        q1, q3 = row["ratio_to_baseline_quartiles"]
        table.add_row(row["side"], f"{row['min_ms']:.3f}", f"{row['median_ms']:.3f}",
                      f"{row['ratio_to_baseline_median']:.3f} ({q1:.3f}-{q3:.3f})")  # fmt: skip
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
