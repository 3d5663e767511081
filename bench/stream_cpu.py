"""What a stream or a tool body costs the gateway against a plain answer: CPU per request,
robust to load.

``bench/gateway_overhead.py --bodies`` reads the gateway's CPU in clock ticks around ten
long rounds, so on a shared machine a neighbour's burst during one body's round moves
its ratio by 0.1-0.2. This script takes many short rounds instead (each body's
requests back to back, one client, one keep-alive connection, as there), reads the
gateway process's CPU in nanoseconds (``/proc/PID/task/*/schedstat``) around each, and
reports the median over rounds of each body's CPU / plain CPU of the same round: a burst
spoils a round, not the figure. ``--baseline SRC`` serves another checkout's ``src/``
too, alternating with this one, for a before/after in one run.

    python bench/stream_cpu.py [--rounds 40] [--per-round 40] [--alternations 2]
        [--baseline OTHER_CHECKOUT/src]

Writes ``bench/results/stream_cpu.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.progress import Progress

import gateway_overhead as bench  # bench/ is on the path when this script runs
import overhead_bodies
import run_record

BODIES = ("plain", "tools", "stream", "tools+stream")


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return total


def measure(
    src: Path, up_port: int, folder: Path, args: argparse.Namespace, progress: Progress
) -> dict[str, list[float]]:
    """Per round and body, the gateway's CPU microseconds per request."""
    port = bench.free_port()
    place = Path(tempfile.mkdtemp(dir=folder))
    team = bench.team_file(place, up_port, "full")
    serve = [sys.executable, "-m", "pinfactory", "serve", "--team", str(team)]
    serve += ["--port", str(port)]
    spent: dict[str, list[float]] = {name: [] for name in BODIES}
    with bench.process(serve, port, bench.python_env(src)) as pid:
        bodies = overhead_bodies.bodies("auto", bench.PROMPT)
        timers = {name: overhead_bodies.Timer(port, bench.KEY, bodies[name]) for name in BODIES}
        for timer in timers.values():
            timer.run(args.warmup, record=False)
        task = progress.add_task(f"{src}", total=args.rounds)
        for _ in range(args.rounds):
            for name, timer in timers.items():
                before = cpu_ns(pid)
                timer.run(args.per_round, record=False)  # plus one untimed, after reconnecting
                spent[name].append((cpu_ns(pid) - before) / (args.per_round + 1) / 1000)
            progress.advance(task)
        for timer in timers.values():
            timer.sock.close()
    return spent


def summary(spent: dict[str, list[float]]) -> dict[str, Any]:
    plain = spent["plain"]
    out: dict[str, Any] = {"plain_cpu_us_median": round(statistics.median(plain), 1)}
    for name in BODIES[1:]:
        ratios = [x / p for x, p in zip(spent[name], plain, strict=True)]
        out[name] = {
            "cpu_us_median": round(statistics.median(spent[name]), 1),
            "cpu_vs_plain_median": round(statistics.median(ratios), 3),
            "cpu_vs_plain_quartiles": [round(q, 3) for q in statistics.quantiles(ratios, n=4)[::2]],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=40, help="requests per body per round")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--alternations", type=int, default=2, help="serve each src this often")
    parser.add_argument("--baseline", type=Path, metavar="SRC", help="another checkout's src/")
    parser.add_argument("--out", type=Path, default=bench.RESULTS / "stream_cpu.json")
    args = parser.parse_args()
    sources = {"now": bench.ROOT / "src"}
    if args.baseline is not None:
        sources = {"baseline": args.baseline, **sources}
    folder = Path(tempfile.mkdtemp(prefix="pinfactory-stream-cpu-"))
    up_port = bench.free_port()
    spent: dict[str, dict[str, list[float]]] = {
        label: {name: [] for name in BODIES} for label in sources
    }
    with (
        bench.process(bench.upstream_args(up_port), up_port, bench.python_env()),
        Progress() as progress,
    ):
        for _ in range(args.alternations):
            for label, src in sources.items():
                for name, values in measure(src, up_port, folder, args, progress).items():
                    spent[label][name].extend(values)
    report = run_record.header("stream_cpu")
    report["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report["results"] = {label: summary(values) for label, values in spent.items()}
    for label, result in report["results"].items():
        ratios = ", ".join(
            f"{name} {result[name]['cpu_vs_plain_median']:.3f}x" for name in BODIES[1:]
        )
        print(f"{label}: plain {result['plain_cpu_us_median']:.0f} us CPU/request; {ratios}")
    run_record.write(args.out, report)


if __name__ == "__main__":
    main()
