"""Load test: N concurrent clients, a fixed count of requests, an upstream that fails on purpose.

A fault upstream (``pinfactory.testing.faults``) answers every request with
``"echo: <the question>"`` unless a fault strikes (at ``--fault-rate``, spread evenly over
429 with Retry-After, 500, connection resets, malformed JSON, slow past the timeout and
truncated streams). A gateway (``pinfactory serve``, its own process) stands in front of
it with one member; ``--fallback`` answers with a ``fallback`` member instead, whose
second part is the same model on a healthy upstream. Clients send unique questions (a share of them
streamed), each exactly once (no client retries), and check every answer against what
the upstream sends.

Reports throughput, latency added over calling the healthy upstream directly
(p50/p95/p99), errors by kind, wrong answers (a 200 whose text is not what the upstream
said, or a stream that ends without ``[DONE]`` and no error event), and ledger
completeness: rows == requests sent, and the audit chain verifies. Plain and streamed
requests are also counted apart (``by_mode``): a stream that breaks after its first byte
cannot be retried or fall back; ``--hold-stream S`` sets the members' ``hold_stream_s``,
which holds a stream's chunks for up to S seconds before relaying them, so one that
breaks within that time is retried or falls back (its first token comes up to S later).

    python bench/load.py [--requests 2000] [--concurrency 32] [--fault-rate 0.1]
        [--fallback] [--stream-share 0.25] [--durability full|group] [--hold-stream S]
        [--label NAME]

Writes ``bench/results/load-<label>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pinfactory.ledger import open_ledger
from pinfactory.ledger.chain import verify_ledger
from pinfactory.testing.faults import Fault, FaultPlan, echo_answer, fault_upstream
from pinfactory.testing.processes import start_gateway, stop_gateway

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FAULTS = (
    Fault.RATE_LIMITED,
    Fault.SERVER_ERROR,
    Fault.RESET,
    Fault.MALFORMED,
    Fault.SLOW,
    Fault.TRUNCATED,
)
console = Console()


@dataclass
class Outcome:
    ok: bool
    kind: str  # "ok", "wrong answer", "http 502 member_failed", "stream error", ...
    latency_s: float
    stream: bool = False


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def team_yaml(
    primary: str, backup: str | None, ledger: Path, durability: str, hold_stream_s: float = 0.0
) -> str:
    members = (
        f"  - {{name: primary, kind: openai_http, timeout_s: 2, settings: "
        f"{{base_url: '{primary}', model: m}}}}\n"
    )
    answering = "primary"
    if backup is not None:  # the pipeline's fallback composite: primary, then backup
        members += (
            f"  - {{name: backup, kind: openai_http, timeout_s: 2, settings: "
            f"{{base_url: '{backup}', model: m}}}}\n"
            "  - {name: steady, kind: fallback, settings: {members: [primary, backup]}}\n"
        )
        answering = "steady"
    return (
        "name: load\nmembers:\n" + members + f"routing: {{kind: rules, fallback: {answering}}}\n"
        "upstream: {retries: 1, max_retry_after_s: 1, total_timeout_s: 1.5, "
        f"backoff_s: 0.02, hold_stream_s: {hold_stream_s}, "
        "breaker: {failures: 50, window_s: 10, cooldown_s: 2}}\n"
        f"ledger: {{path: '{ledger}', durability: {durability}}}\n"
        "observe: {access_log: false}\n"
        "gateway: {max_body_bytes: 65536}\n"
    )


async def one(client: httpx.AsyncClient, url: str, index: int, stream: bool) -> Outcome:
    outcome = await _one(client, url, index, stream)
    outcome.stream = stream
    return outcome


async def _one(client: httpx.AsyncClient, url: str, index: int, stream: bool) -> Outcome:
    question = f"question {index} of the load test"
    expected = echo_answer(question)
    body = {"model": "auto", "messages": [{"role": "user", "content": question}]}
    started = time.perf_counter()
    try:
        if not stream:
            reply = await client.post(url, json=body)
            elapsed = time.perf_counter() - started
            if reply.status_code != 200:
                code = _code(reply)
                return Outcome(False, f"http {reply.status_code} {code}", elapsed)
            text = reply.json()["choices"][0]["message"]["content"]
            return Outcome(text == expected, "ok" if text == expected else "wrong answer", elapsed)
        async with client.stream("POST", url, json={**body, "stream": True}) as reply:
            if reply.status_code != 200:
                await reply.aread()
                code = _code(reply)
                return Outcome(
                    False, f"http {reply.status_code} {code}", time.perf_counter() - started
                )
            parts, done, error = [], False, None
            async for line in reply.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"].get("code", "error")
                    continue
                for choice in chunk.get("choices") or ():
                    parts.append((choice.get("delta") or {}).get("content") or "")
        elapsed = time.perf_counter() - started
        if error is not None:
            return Outcome(False, f"stream error {error}", elapsed)
        text = "".join(parts)
        if not done or text != expected:
            return Outcome(False, "wrong answer", elapsed)
        return Outcome(True, "ok", elapsed)
    except httpx.HTTPError as exc:
        return Outcome(False, f"transport {type(exc).__name__}", time.perf_counter() - started)


def _code(reply: httpx.Response) -> str:
    try:
        return str(reply.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


async def drive(url: str, count: int, concurrency: int, stream_share: float) -> Tally:
    tally = Tally()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    every = max(1, round(1 / stream_share)) if stream_share > 0 else 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{count} requests", total=count)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def worker() -> None:
                while not queue.empty():
                    index = queue.get_nowait()
                    stream = bool(every) and index % every == 0
                    tally.add(await one(client, url, index, stream))
                    progress.advance(task)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}


async def ledger_check(path: Path) -> dict[str, Any]:
    ledger = open_ledger(str(path), "full")
    await ledger.open()
    try:
        report = await verify_ledger(ledger)
        rows = await ledger.entries(limit=10_000_000)
    finally:
        await ledger.close()
    return {"rows": len(rows), "chain_ok": report.intact, "chain": str(report)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    rates = {f: args.fault_rate / len(FAULTS) for f in FAULTS}
    plan = FaultPlan(rates=rates, seed=args.seed, slow_s=3.0, retry_after_s=1, hold_s=3.0)
    work = Path(tempfile.mkdtemp(prefix="pinfactory-load-"))
    with fault_upstream(plan) as faulty, fault_upstream() as healthy:
        ledger = work / "ledger.db"
        team = work / "team.yaml"
        backup = healthy.url if args.fallback else None
        team.write_text(team_yaml(faulty.url, backup, ledger, args.durability, args.hold_stream))
        gateway = start_gateway(team, log=work / "gateway.log", env={"OMP_NUM_THREADS": "1"})
        try:
            direct = asyncio.run(
                drive(healthy.url + "/chat/completions", min(500, args.requests),
                      args.concurrency, 0.0)
            )  # fmt: skip
            url = gateway.url + "/v1/chat/completions"
            started = time.perf_counter()
            tally = asyncio.run(drive(url, args.requests, args.concurrency, args.stream_share))
            wall = time.perf_counter() - started
        finally:
            stop_gateway(gateway, timeout_s=60)
        served = {str(k): v for k, v in faulty.served.items()}
    ledger_report = asyncio.run(ledger_check(ledger))
    ok = [o for o in tally.outcomes if o.ok]
    gateway_p = percentiles([o.latency_s for o in ok]) if len(ok) > 2 else {}
    direct_p = percentiles([o.latency_s for o in direct.outcomes])
    kinds = Counter(o.kind for o in tally.outcomes if not o.ok)
    return {
        "label": args.label,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "fault_rate": args.fault_rate,
        "fallback": args.fallback,
        "stream_share": args.stream_share,
        "hold_stream_s": args.hold_stream,
        "durability": args.durability,
        "seed": args.seed,
        "wall_s": round(wall, 3),
        "throughput_rps": round(args.requests / wall, 1),
        "answered_correctly": len(ok),
        "answered_correctly_share": round(len(ok) / args.requests, 5),
        "by_mode": {
            mode: by_mode(tally, stream) for mode, stream in (("plain", False), ("stream", True))
        },
        "errors_by_kind": dict(kinds.most_common()),
        "wrong_answers": kinds.get("wrong answer", 0),
        "faults_dealt_by_upstream": served,
        "latency_ms_direct": {k: round(v, 3) for k, v in direct_p.items()},
        "latency_ms_gateway": {k: round(v, 3) for k, v in gateway_p.items()},
        "latency_ms_added": {k: round(gateway_p[k] - direct_p[k], 3) for k in gateway_p},
        "ledger": {**ledger_report, "complete": ledger_report["rows"] == args.requests},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "python bench/load.py " + " ".join(sys.argv[1:]),
    }


def by_mode(tally: Tally, stream: bool) -> dict[str, Any]:
    """Plain or streamed requests alone: how many, answered correctly, errors by kind."""
    mine = [o for o in tally.outcomes if o.stream is stream]
    ok = sum(o.ok for o in mine)
    return {
        "requests": len(mine),
        "answered_correctly": ok,
        "answered_correctly_share": round(ok / len(mine), 5) if mine else None,
        "errors_by_kind": dict(Counter(o.kind for o in mine if not o.ok).most_common()),
    }


def show(result: dict[str, Any]) -> None:
    table = Table(title=f"load: {result['label']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("requests / concurrency", f"{result['requests']} / {result['concurrency']}")
    table.add_row("fault rate / fallback", f"{result['fault_rate']:.0%} / {result['fallback']}")
    table.add_row("throughput (req/s)", f"{result['throughput_rps']}")
    share = result["answered_correctly_share"]
    table.add_row("answered correctly", f"{result['answered_correctly']} ({share:.2%})")
    for mode, part in result["by_mode"].items():
        if part["requests"]:
            table.add_row(
                f"  {mode}",
                f"{part['answered_correctly']} of {part['requests']} "
                f"({part['answered_correctly_share']:.2%})",
            )
    for name, value in result["latency_ms_added"].items():
        table.add_row(f"added latency {name} (ms)", f"{value:.2f}")
    table.add_row("wrong answers", str(result["wrong_answers"]))
    for kind, count in result["errors_by_kind"].items():
        table.add_row(f"  error: {kind}", str(count))
    ledger = result["ledger"]
    table.add_row("ledger rows == requests", f"{ledger['rows']} ({ledger['complete']})")
    table.add_row("audit chain verifies", str(ledger["chain_ok"]))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--fallback", action="store_true")
    parser.add_argument("--stream-share", type=float, default=0.25)
    parser.add_argument("--durability", choices=["full", "group"], default="group")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--hold-stream",
        type=float,
        default=0.0,
        metavar="S",
        help="the members' upstream hold_stream_s: hold a stream's chunks this long before "
        "relaying, so one that breaks meanwhile falls back",
    )
    parser.add_argument("--label", default=None)
    args = parser.parse_args()
    if args.label is None:
        args.label = f"faults{round(args.fault_rate * 100)}" + (
            "-fallback" if args.fallback else ""
        )
        if args.hold_stream:
            args.label += f"-hold{args.hold_stream:g}"
    result = run(args)
    show(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"load-{args.label}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
