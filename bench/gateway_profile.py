"""Where a gateway worker's CPU goes under load: py-spy samples grouped by component.

The same set-up as ``bench/gateway_overhead.py`` (an instant upstream, one gateway
worker with retries, a breaker and a per-key rate limit on, a SQLite ledger), loaded by
``wrk`` (else an asyncio client) at 32 connections while ``py-spy record`` samples the
worker (all threads, idle time left out). Each sample counts for the first component
below whose code is on its stack; the rest is the event loop and its sockets.

    python bench/gateway_profile.py [--durability group] [--seconds 12]

Prints the table and writes ``bench/results/gateway_profile.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gateway_overhead as bench  # bench/ is on the path when this script runs
import run_record

COMPONENTS = [  # (component, a path fragment on the sample's stack), first match wins
    ("auth (gateway/auth.py)", "gateway/auth.py"),
    ("rate limiter (reliability/limits.py)", "reliability/limits.py"),
    ("circuit breaker (reliability/breaker.py)", "reliability/breaker.py"),
    ("access log (observe/access_log.py)", "observe/access_log.py"),
    ("upstream transport (members/upstream.py, aiohttp)", "members/upstream.py"),
    ("payload translation (members/openai_http.py)", "members/openai_http.py"),
    ("ledger writer thread (ledger/*)", "ledger-writer"),
    ("ledger, request side (ledger/*)", "pinfactory/ledger/"),
    ("request parsing (gateway/schema.py)", "gateway/schema.py"),
    ("pipeline: routing, outcome, metrics", "pinfactory/pipeline.py"),
    ("gateway handler and response write (gateway/app.py)", "gateway/app.py"),
    ("uvicorn's HTTP protocol", "uvicorn/protocols"),
    ("event loop and sockets (uvloop, asyncio)", ""),
]


def components(raw: str) -> dict[str, float]:
    """Share of samples per component, from py-spy's ``raw`` (collapsed stacks) output."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        for name, fragment in COMPONENTS:
            if fragment in stack:
                counts[name] += int(n)
                break
    return {name: round(100 * counts[name] / max(total, 1), 1) for name, _ in COMPONENTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durability", choices=["full", "group", "journal"], default="group")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--asyncio-client", action="store_true", help="do not use wrk")
    parser.add_argument("--out", type=Path, default=bench.RESULTS / "gateway_profile.json")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    folder = Path(tempfile.mkdtemp(prefix="pinfactory-profile-"))
    up_port, port = bench.free_port(), bench.free_port()
    team = bench.team_file(folder, up_port, args.durability)
    serve = [sys.executable, "-m", "pinfactory", "serve", "--team", str(team), "--port", str(port)]
    env = bench.python_env()
    with (
        bench.process(bench.upstream_args(up_port), up_port, env),
        bench.process(serve, port, env) as pid,
    ):
        target = bench.Target("pinfactory", port, "auto")
        bench.latency(target, 200, 50)  # warm
        samples = folder / "samples.txt"
        record = [spy, "record", "-p", str(pid), "-d", str(int(args.seconds) - 2), "-r", "200"]
        record += ["-f", "raw", "-o", str(samples), "--nonblocking", "--threads"]
        print(f"py-spy on the gateway worker while {args.concurrency} connections load it")
        tput: dict[str, Any] = {}

        def load() -> None:
            if shutil.which("wrk") and not args.asyncio_client:
                tput.update(bench.throughput_wrk(target, args.concurrency, args.seconds, folder))
            else:
                tput.update(bench.throughput_asyncio(target, args.concurrency, args.seconds))

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(1.0)
        subprocess.run(record, check=True, capture_output=True)
        loader.join()
        shares = components(samples.read_text(errors="replace"))
        if args.raw is not None:
            shutil.copy(samples, args.raw)
    shutil.rmtree(folder, ignore_errors=True)
    for name, share in shares.items():
        print(f"{share:6.1f}%  {name}")
    print(f"throughput meanwhile: {tput.get('requests_per_s')} req/s ({tput.get('tool')})")
    report = run_record.header("gateway_profile")
    report.update(durability=args.durability, throughput=tput, share_of_samples_pct=shares)
    run_record.write(args.out, report)


if __name__ == "__main__":
    main()
