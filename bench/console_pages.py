"""How long each console page takes on a ledger of 100,000 requests (goal: under a second).

Fills a ledger through its own ``record`` (one request row and four audit
entries per request, ``durability: group``) with requests spread over the
last seven days across four units, five members, two routers, some errors
and downgrades, plus pending and decided reviews; serves it with a gateway
on loopback; logs in through the form; then times every page (median and
worst of ``--runs`` after one warm-up) and how long a request sent through
the openai SDK takes to reach an open Live stream. "CPU ms" is the process CPU
time one page took (server and client share the process): what a page costs when
the machine is not shared, which wall times on a busy machine do not show.

    python bench/console_pages.py [--requests 100000] [--runs 5] [--pg-dsn DSN] [--ledger F]

Prints a table and writes bench/results/console_pages.json (console_pages.postgresql.json
with --pg-dsn).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pinfactory.console import ConsoleSettings
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import AuditEvent, LedgerEntry, Review, open_ledger
from pinfactory.team import load_team

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "sk-bench-console-admin"
UNITS = ("sales", "support", "research", "ops")
MEMBERS = (  # name, tier, price per call, router, reason
    ("calc", "tool", "0.0001", "rules", "rule 'arithmetic' matched"),
    ("orders", "tool", "0.0002", "rules", "rule 'orders' matched"),
    ("small", "local", "0.0005", "semantic", "closest route 'chitchat' (0.71)"),
    ("docs", "frontier", "0.004", "rules", "no rule matched; fallback 'docs'"),
    ("big", "frontier", "0.02", "rules", "quota 'big-daily' exhausted: downgraded from big"),
)
console = Console(width=110)


def team_text(location: str) -> str:
    where = f"dsn: '{location}'" if location.startswith("postgres") else f"path: '{location}'"
    members = "\n".join(
        f"  - {{name: {name}, kind: calculator, tier: {tier}, price: {{per_call: {price}}}}}"
        for name, tier, price, _, _ in MEMBERS
    )
    keys = "\n".join(f"  - {{key: sk-bench-{u}-0001, unit: {u}}}" for u in UNITS)
    return f"""
name: bench
members:
{members}
routing: {{kind: rules, fallback: calc}}
budgets:
  - {{unit: sales, period: month, max_spend_usd: 500}}
keys:
  - {{key: {ADMIN}, unit: ops, user: bench, admin: true}}
{keys}
ledger: {{{where}, durability: group}}
"""


def fake_request(i: int, now: float, rng: random.Random) -> tuple[LedgerEntry, list[AuditEvent]]:
    name, _, price, router, reason = MEMBERS[rng.randrange(len(MEMBERS))]
    unit = UNITS[rng.randrange(len(UNITS))]
    rid = f"req_bench_{i:08d}"
    failed = rng.random() < 0.03
    tin, tout = rng.randint(8, 400), rng.randint(4, 300)
    cost = Decimal(0) if failed else Decimal(price)
    entry = LedgerEntry(
        rid,
        unit,
        f"user{rng.randrange(20)}",
        "auto",
        name,
        router,
        reason,
        0 if failed else tin,
        0 if failed else tout,
        cost,
        rng.lognormvariate(3.0, 0.8),
        502 if failed else 200,
        error="upstream_error: member failed" if failed else None,
        time=now - rng.random() * 7 * 86400,
    )
    events = [
        AuditEvent("request", rid, {"unit": unit, "prompt_tokens": tin}),
        AuditEvent(
            "decision",
            rid,
            {
                "member": name,
                "router": router,
                "reason": reason,
                "confidence": round(rng.random(), 3),
            },
        ),
        AuditEvent(
            "call",
            rid,
            {"member": name, "input_tokens": tin, "output_tokens": tout, "cost_usd": str(cost)},
        ),
        AuditEvent("error" if failed else "response", rid, {"status": entry.status}),
    ]
    return entry, events


async def fill(location: str, count: int) -> None:
    """``count`` requests and 200 reviews (half decided) through the ledger's own writes."""
    ledger = open_ledger(location, "group")
    await ledger.open()
    rng, now = random.Random(7), time.time()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"filling {count:,} requests", total=count)
            batch = 500
            for start in range(0, count, batch):
                made = [fake_request(i, now, rng) for i in range(start, min(count, start + batch))]
                await asyncio.gather(*(ledger.record(e, ev) for e, ev in made))
                progress.update(task, advance=len(made))
        for i in range(200):
            review = Review(
                f"rev_bench_{i:04d}",
                f"req_bench_{i:08d}",
                UNITS[i % 4],
                "alice",
                now - i * 60,
                "low confidence",
                None,
                "What is 12 x 7?",
                "small",
                "84",
            )
            await ledger.add_review(review)
            if i % 2:
                await ledger.decide_review(
                    review.id,
                    "approved",
                    "rita",
                    None,
                    None,
                    [AuditEvent("review.approved", review.request_id)],
                )
    finally:
        await ledger.close()


def login(client: httpx.Client) -> str:
    form = client.get("/ui/login")
    token = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    done = client.post(
        "/ui/login",
        data={"key": ADMIN, "csrf": token},
        headers={"cookie": form.headers["set-cookie"].split(";", 1)[0]},
    )
    session = [c for c in done.headers.get_list("set-cookie") if c.startswith("pf_console=")]
    return session[0].split(";", 1)[0]


def time_pages(url: str, runs: int) -> list[dict[str, Any]]:
    pages = [
        "/ui/live",
        "/ui/live?unit=research",
        "/ui/live?status=error",
        "/ui/live?before=50000",
        "/ui/requests/req_bench_00099999",
        "/ui/requests/req_bench_00000001",
        "/ui/spend",
        "/ui/spend?window=7d&compare=big",
        "/ui/spend.csv?by=tier&window=7d",
        "/ui/routing?window=7d",
        "/ui/members?window=7d",
        "/ui/reviews",
        "/ui/audit",
        "/ui/lab",
    ]
    results = []
    with httpx.Client(base_url=url, timeout=60) as client:
        cookie = {"cookie": login(client)}
        for path in pages:
            seconds, cpu = [], []
            for run in range(runs + 1):
                started, used = time.perf_counter(), time.process_time()
                response = client.get(path, headers=cookie)
                elapsed = time.perf_counter() - started
                if response.status_code not in (200, 404):
                    raise SystemExit(f"{path}: HTTP {response.status_code}\n{response.text[:500]}")
                if run:
                    seconds.append(elapsed)
                    cpu.append(time.process_time() - used)
            results.append(
                {
                    "page": path,
                    "status": response.status_code,
                    "median_s": statistics.median(seconds),
                    "max_s": max(seconds),
                    "cpu_median_s": statistics.median(cpu),
                    "bytes": len(response.content),
                }
            )
    return results


def live_delay(url: str, samples: int = 5) -> list[float]:
    """Seconds from an SDK response to its row arriving on an open Live stream."""
    delays: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        cookie = {"cookie": login(client), "accept": "text/event-stream"}
        with client.stream("GET", "/ui/live/stream", headers=cookie) as stream:
            lines: list[tuple[float, str]] = []

            def read() -> None:
                try:
                    for line in stream.iter_lines():
                        if line.startswith("data:"):
                            lines.append((time.perf_counter(), line))
                except httpx.HTTPError:
                    return  # the stream closed at the end of the measurement

            threading.Thread(target=read, daemon=True).start()
            with OpenAI(base_url=url + "/v1", api_key="sk-bench-sales-0001") as sdk:
                for _ in range(samples):
                    raw = sdk.chat.completions.with_raw_response.create(
                        model="calc", messages=[{"role": "user", "content": "2 + 2"}]
                    )
                    answered = time.perf_counter()
                    rid = raw.headers["x-request-id"]
                    deadline = time.monotonic() + 10
                    while not (hits := [t for t, line in list(lines) if rid in line]):
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{rid} never reached the Live stream")
                        time.sleep(0.002)
                    delays.append(max(0.0, hits[0] - answered))
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg-dsn", default=None, help="bench a PostgreSQL ledger instead")
    parser.add_argument("--reuse", action="store_true", help="the ledger is already filled")
    parser.add_argument(
        "--ledger", default=None, help="SQLite file to fill once and reuse (default: a temp file)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        location = args.pg_dsn or args.ledger or str(Path(tmp) / "ledger.db")
        if args.reuse or (args.ledger and Path(args.ledger).exists()):
            console.print("reusing the ledger as filled before")
        else:
            started = time.perf_counter()
            asyncio.run(fill(location, args.requests))
            took = time.perf_counter() - started
            console.print(f"filled {args.requests:,} requests in {took:.0f} s")
        team_file = Path(tmp) / "team.yaml"
        team_file.write_text(team_text(location))
        settings = ConsoleSettings(secret="bench", lab_reports=str(Path(tmp) / "lab"))
        with serve_in_thread(create_app(load_team(team_file, {}), console=settings)) as url:
            pages = time_pages(url, args.runs)
            delays = live_delay(url)
    table = Table(
        title=f"console pages on {args.requests:,} requests "
        f"({'PostgreSQL' if args.pg_dsn else 'SQLite'})"
    )
    for column in ("page", "status", "median ms", "worst ms", "CPU ms", "KiB"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for row in pages:
        table.add_row(
            row["page"],
            str(row["status"]),
            f"{1000 * row['median_s']:.0f}",
            f"{1000 * row['max_s']:.0f}",
            f"{1000 * row['cpu_median_s']:.0f}",
            f"{row['bytes'] / 1024:.0f}",
        )
    console.print(table)
    console.print(
        f"Live stream delay after the SDK's response: median "
        f"{1000 * statistics.median(delays):.0f} ms, worst {1000 * max(delays):.0f} ms"
    )
    name = "console_pages.postgresql.json" if args.pg_dsn else "console_pages.json"
    out = ROOT / "bench" / "results" / name
    out.write_text(
        json.dumps(
            {
                "command": "python bench/console_pages.py"
                + (f" --requests {args.requests}" if args.requests != 100_000 else "")
                + (" --pg-dsn DSN" if args.pg_dsn else "")
                + (f" --runs {args.runs}" if args.runs != 5 else ""),
                "store": "postgresql" if args.pg_dsn else "sqlite",
                "requests": args.requests,
                "runs": args.runs,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0],
                },
                "pages": pages,
                "live_delay_s": delays,
                "worst_page_s": max(p["max_s"] for p in pages),
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
