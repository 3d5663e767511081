"""CPU per request of the request path itself (pipeline, outcome, ledger), this code
against another checkout's, in one run, robust to a shared machine's load.

Each side is one long-lived process that opens a one-member team (the calculator,
SQLite ledger with the audit chain, metrics on) and answers ``--warmup`` requests.
Then, ``--rounds`` times, every side in turn (the order alternates: A B, then B A)
answers a batch of ``--requests`` calls of ``Pipeline.complete``, timed with
``getrusage`` (every thread of the process: the main thread and the ledger's writer;
user and system time apart: the system time of a ``full`` ledger's fsyncs moves with the
neighbours' disk traffic). A burst of load from a neighbour lands on one or two adjacent batches, so
besides each side's minimum and median over batches, the figure that compares is the
median over rounds of the per-round ratio ``side / baseline`` (with its quartiles).
Last, each side answers ``--traced`` requests under ``sys.settrace`` and reports the
Python lines it executed per request (every thread): a count of work that no load moves,
beside the times that it does. No HTTP: what the gateway's HTTP layer adds is
``bench/gateway_overhead.py``'s.

``--variant NAME`` adds a side running this code with one suspect taken out, to
measure it on its own in the same alternation (bench-only changes, made by the
sample process after the ledger opens):

- ``no-requests-request``: without the ``requests(request_id)`` index (lookups by id);
- ``no-audit-labels``: without the partial ``audit_label_kinds`` index (the label scan's);
- ``no-new-indexes``: without both (the old path's indexes only).

    python bench/pipeline_cpu.py --baseline OLD_CHECKOUT/src [--rounds 30]
        [--requests 500] [--durability full] [--variant no-new-indexes ...]
        [--side before=BEFORE_CHECKOUT/src ...]

``--side NAME=SRC`` adds another checkout's side (before and after a change, in one run).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import run_record  # bench/ is on the path when this script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

DROPS = {
    "no-requests-request": ("requests_request",),
    "no-audit-labels": ("audit_label_kinds",),
    "no-new-indexes": ("audit_label_kinds", "requests_request"),
}

SAMPLE = """
import asyncio, json, resource, sqlite3, sys, tempfile, threading
from pathlib import Path
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request
from pinfactory.team import parse_team

warmup, durability, drops = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
ledger = Path(tempfile.mkdtemp()) / "ledger.db"


def make_team(path):
    return parse_team(
        "name: cpu\\n"
        "members: [{name: calc, kind: calculator, price: {per_call: 0.001}}]\\n"
        "routing: {kind: rules, fallback: calc}\\n"
        f"ledger: {{path: '{path}', durability: {durability}}}\\n",
        "cpu.yaml",
        {},
    )


team = make_team(ledger)


async def lines(count: int) -> float:
    # Python lines executed per request, every thread (the ledger's writer too): a count
    # no neighbour's load moves. threading.settrace reaches only threads started after
    # it, so a second pipeline (its own ledger) opens under it; lines count only between
    # its warm-up and the end (the writer's loop runs from its start: traced from then
    # on, counted from then), and the timed pipeline is never traced.
    seen, counting = [0], [False]

    def local(frame, event, arg):
        if event == "line" and counting[0]:
            seen[0] += 1
        return local

    def tracer(frame, event, arg):
        return local if event == "call" else None

    threading.settrace(tracer)
    try:
        async with open_pipeline(make_team(ledger.with_name("traced.db"))) as pipeline:
            for _ in range(50):
                await pipeline.complete(Request.from_text("2 + 2"))
            await settled(pipeline)
            counting[0] = True
            sys.settrace(tracer)
            for _ in range(count):
                await pipeline.complete(Request.from_text("2 + 2"))
            await settled(pipeline)  # the writer's share of the last requests too
            sys.settrace(None)
            counting[0] = False
    finally:
        sys.settrace(None)
        threading.settrace(None)
    return seen[0] / count


async def settled(pipeline) -> None:
    # every write committed (a journal's posted ones too), whichever side's ledger this is
    writer = getattr(pipeline.ledger, "_writer", None)
    flush = getattr(writer, "flush", None)
    if flush is not None:
        await flush()
    else:
        await pipeline.ledger.entries(limit=1)  # a read waits behind the writes before it


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
            if line.startswith("lines"):
                print(json.dumps({"lines": await lines(int(line.split()[1]))}), flush=True)
                continue
            count = int(line)
            if count == 0:
                break
            before = resource.getrusage(resource.RUSAGE_SELF)
            for _ in range(count):
                await pipeline.complete(Request.from_text("2 + 2"))
            after = resource.getrusage(resource.RUSAGE_SELF)
            user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
            print(json.dumps({"user_ms": user / count * 1000, "system_ms": system / count * 1000}),
                  flush=True)


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

    def batch(self, requests: int) -> tuple[float, float]:
        """User and system CPU milliseconds per request over one batch of ``requests``."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{requests}\n")
        self.process.stdin.flush()
        found = json.loads(self._line())
        return float(found["user_ms"]), float(found["system_ms"])

    def lines(self, requests: int) -> float:
        """Python lines executed per request, over ``requests`` traced requests."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"lines {requests}\n")
        self.process.stdin.flush()
        return float(json.loads(self._line())["lines"])

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


def summary(found: dict[str, list[tuple[float, float]]]) -> list[dict[str, Any]]:
    """Per side: min and median CPU per request (user + system, and user alone), and the
    per-round ratios to the baseline's (median and quartiles)."""
    base = found["baseline"]
    rows = []
    for name, batches in found.items():
        total = [u + s for u, s in batches]
        user = [u for u, _ in batches]
        row: dict[str, Any] = {
            "side": name,
            "min_ms": round(min(total), 4),
            "median_ms": round(statistics.median(total), 4),
            "user_min_ms": round(min(user), 4),
            "user_median_ms": round(statistics.median(user), 4),
        }
        for label, pick in (("", _total), ("user_", _user)):
            ratios = [pick(b) / pick(o) for b, o in zip(batches, base, strict=True)]
            q1, median, q3 = quartiles(ratios)
            row[f"{label}ratio_to_baseline_median"] = round(median, 4)
            row[f"{label}ratio_to_baseline_quartiles"] = [round(q1, 4), round(q3, 4)]
        row["samples_ms"] = [[round(u, 4), round(s, 4)] for u, s in batches]
        rows.append(row)
    return rows


def _total(batch: tuple[float, float]) -> float:
    return batch[0] + batch[1]


def _user(batch: tuple[float, float]) -> float:
    return batch[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout's src/")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=500, help="requests per batch")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument(
        "--durability", choices=["full", "group", "journal"], default="full",
        help="journal: every side must have it (the old path does not)",
    )  # fmt: skip
    parser.add_argument("--variant", action="append", choices=sorted(DROPS), default=[])
    parser.add_argument(
        "--side", action="append", default=[], metavar="NAME=SRC",
        help="another checkout's src/ to run beside them (e.g. before=BEFORE/src)",
    )  # fmt: skip
    parser.add_argument(
        "--traced", type=int, default=200, help="requests traced to count Python lines each"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "pipeline_cpu.json")
    args = parser.parse_args()
    sides = [Side("baseline", args.baseline.resolve())]
    for named in args.side:
        name, _, src = named.partition("=")
        sides.append(Side(name, Path(src).resolve()))
    sides.append(Side("this", ROOT / "src"))
    sides += [Side(name, ROOT / "src", DROPS[name]) for name in args.variant]
    found: dict[str, list[tuple[float, float]]] = {side.name: [] for side in sides}
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
            traced = {side.name: side.lines(args.traced) for side in sides}
        finally:
            for side in sides:
                side.stop()
    rows = summary(found)
    for row in rows:
        row["python_lines_per_request"] = round(traced[row["side"]], 1)
    table = Table(title=f"CPU per request, ms (durability {args.durability})")
    for column in ("side", "min", "median", "x baseline (quartiles)", "user: median",
                   "x baseline (quartiles)", "Python lines"):  # fmt: skip
        table.add_column(column)
    for row in rows:
        q1, q3 = row["ratio_to_baseline_quartiles"]
        u1, u3 = row["user_ratio_to_baseline_quartiles"]
        table.add_row(
            row["side"], f"{row['min_ms']:.3f}", f"{row['median_ms']:.3f}",
            f"{row['ratio_to_baseline_median']:.3f} ({q1:.3f}-{q3:.3f})",
            f"{row['user_median_ms']:.3f}",
            f"{row['user_ratio_to_baseline_median']:.3f} ({u1:.3f}-{u3:.3f})",
            f"{row['python_lines_per_request']:.0f}",
        )  # fmt: skip
    Console().print(table)
    report = run_record.header("pipeline_cpu")
    report["settings"] = vars(args) | {"baseline": str(args.baseline), "out": str(args.out)}
    report["rows"] = rows
    run_record.write(args.out, report)


if __name__ == "__main__":
    main()
