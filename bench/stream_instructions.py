"""Instructions per request the gateway spends on each body: a count no load moves.

On a shared 2-core machine the CPU-time ratios of ``gateway_overhead.py --bodies`` and
``stream_cpu.py`` move by 0.1-0.3 between rounds, more than most changes to the stream
path are worth. This serves the gateway under ``valgrind --tool=callgrind``
(instrumentation off until the warm-up is done), sends each body's requests one after
another on one keep-alive connection (as ``overhead_bodies.Timer`` does), and counts the
instructions of every thread of the gateway process over them (user space only: the
kernel's work for the sockets is not in it). ``--src`` serves another checkout's
``src/``, for a before/after.

    python bench/stream_instructions.py [--requests 200] [--bodies plain,stream,tools+stream]
        [--src OTHER_CHECKOUT/src]

Prints the table and writes ``bench/results/stream_instructions.json``. Needs valgrind.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import Progress

import gateway_overhead as bench  # bench/ is on the path when this script runs
import overhead_bodies


def control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def totals(folder: Path, label: str) -> int:
    """The instruction total of the dump triggered as ``label``."""
    for dump in folder.glob("callgrind.out.*"):
        text = dump.read_text(errors="replace")
        if f"Trigger: dump {label}\n" in text:
            dump.unlink()
            return int(text.rsplit("totals:", 1)[1].split()[0])
    raise RuntimeError(f"no callgrind dump for {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="counted requests per body")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--bodies", default="plain,stream,tools+stream")
    parser.add_argument("--src", type=Path, default=bench.ROOT / "src", help="the src/ served")
    parser.add_argument("--out", type=Path, default=bench.RESULTS / "stream_instructions.json")
    args = parser.parse_args()
    names = args.bodies.split(",")
    folder = Path(tempfile.mkdtemp(prefix="pinfactory-instructions-"))
    up_port, port = bench.free_port(), bench.free_port()
    team = bench.team_file(folder, up_port, "full")
    serve = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    serve += [f"--callgrind-out-file={folder}/callgrind.out.%p"]
    serve += [sys.executable, "-m", "pinfactory", "serve", "--team", str(team)]
    serve += ["--port", str(port)]
    env = bench.python_env(args.src.resolve())
    env["PYTHONMALLOC"] = "malloc"  # valgrind sees every allocation
    per_request: dict[str, float] = {}
    with (
        bench.process(bench.upstream_args(up_port), up_port, bench.python_env()),
        bench.process(serve, port, env, start_s=600) as pid,
        Progress() as progress,
    ):
        bodies = overhead_bodies.bodies("auto", bench.PROMPT)
        timers = {name: overhead_bodies.Timer(port, bench.KEY, bodies[name]) for name in names}
        task = progress.add_task("bodies under callgrind", total=len(names) * 2)
        for timer in timers.values():
            timer.run(args.warmup, record=False)
            progress.advance(task)
        for name, timer in timers.items():
            timer.run(5, record=False)  # reconnected: the next connection's first is done
            control("-z", str(pid))
            control("-i", "on", str(pid))
            timer.run(args.requests - 1, record=False)  # plus the one after reconnecting
            control("-i", "off", str(pid))
            control("-d", name, str(pid))
            per_request[name] = totals(folder, name) / args.requests
            progress.advance(task)
        for timer in timers.values():
            timer.sock.close()
    plain = per_request.get("plain")
    print(f"\n{'body':<14}{'instructions/request':>22}{'x plain':>9}   ({args.src})")
    for name, count in per_request.items():
        ratio = f"{count / plain:.3f}" if plain else "-"
        print(f"{name:<14}{count / 1e6:>19.3f} M{ratio:>9}")
    report = {
        "benchmark": "stream_instructions",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python bench/stream_instructions.py " + " ".join(sys.argv[1:]),
        "src": str(args.src),
        "requests": args.requests,
        "instructions_per_request": {k: round(v) for k, v in per_request.items()},
        "vs_plain": {k: round(v / plain, 4) for k, v in per_request.items()} if plain else {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
