"""What one request costs on its critical path (its bytes in, its answer's bytes out), in a
figure the machine's load does not move: the Python lines and calls executed, by component.

The gateway app for ``gateway_overhead.py``'s team (one ``openai_http`` member on an
instant upstream on loopback, retries, a breaker and a per-key rate limit on, ``journal``
ledger) is driven over ASGI in this process, one request at a time, as one client does. For
each request the event loop's thread CPU (``thread_time``) is read from the call until the
response body's send, and from there until the app returns (the work deferred past the
answer, ``pinfactory.deferred``). Then ``--traced`` requests run under ``sys.settrace``:
every Python line executed before the body's send is counted and charged to a component by
its module (what is not pinfactory's or its libraries': the transport, the client's own
``members/http1.py``, is one too). uvicorn's HTTP protocol is not in it (the floor,
``bench/relay_floor.py``, pays that too); ``gateway_overhead.py`` measures the whole over HTTP.

    python bench/critical_path.py [--baseline OTHER_CHECKOUT/src] [--requests 3000]

``--baseline`` runs the same measurement on another checkout's ``src`` (in a process of its
own) and prints both. Writes ``bench/results/critical_path.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gateway_overhead as bench  # bench/ is on the path when this script runs
import run_record

COMPONENTS = [  # (component, fragments of "file:function" it owns), first match wins
    (
        "response body",
        [
            "schema.py:completion_body",
            "schema.py:_choices",
            "schema.py:usage_body",
            "outcome.py:metadata",
            "AnswerResponse",
            "pydantic/main.py:model_dump",
        ],
    ),
    ("ledger row and chain", ["pinfactory/ledger/", "LedgerEntry", "AuditEvent", ":trace_id"]),
    ("transport (members/http1.py)", ["members/http1.py", "asyncio/locks.py"]),
    (
        "upstream: retries, breaker",
        [
            "members/upstream.py",
            "reliability/breaker.py",
            "contextlib.py",
            "reliability/state.py:get",
        ],
    ),
    (
        "member call: payload, answer check",
        [
            "members/calls.py",
            "members/openai_http.py",
            "pydantic/",
            "Completion",
            "MemberCall",
            "Usage",
            "members/base.py",
            "request.py:wire_message",
        ],
    ),
    ("rate limits", ["reliability/limits.py", "reliability/state.py", "Who", "Admission"]),
    (
        "request parsing, auth",
        ["gateway/schema.py", "gateway/auth.py", "/Request", "/Message", "pinfactory/request.py"],
    ),
    (
        "routing",
        [
            "pinfactory/routing/",
            "capabilities.py",
            "Decision",
            "pipeline.py:decide",
            "pipeline.py:_prepare",
            "tiers.py",
            "spend.py",
            "team.py",
        ],
    ),
    (
        "pipeline, outcome, stages",
        [
            "pipeline.py",
            "outcome.py",
            "observe/",
            "Answer",
            "Span",
            "Tab",
            "Timeline",
            "deferred.py",
            "Deferred",
        ],
    ),
    ("gateway intake and dispatch", ["gateway/", "starlette/", "Intake", "Position"]),
    ("metrics (prometheus-client)", ["prometheus_client/"]),
]
HERE = Path(__file__).resolve()


def component(where: str) -> str:
    for name, fragments in COMPONENTS:
        if any(fragment in where for fragment in fragments):
            return name
    return "other"


class Driver:
    """One app, one request at a time over ASGI, as a server would call it."""

    def __init__(self, app: Any, body: bytes, key: str) -> None:
        from pinfactory.gateway.departure import HANGUP, Hangup

        self.app, self.body = app, body
        self.hangup_key, self.hangup_class = HANGUP, Hangup
        self.headers = [
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        self.sent = False  # the body's send happened (read by the tracer)
        self.sent_cpu = 0

    async def one(self) -> tuple[float, float]:
        """One request: thread CPU in microseconds until its body was sent, and after."""
        hangup = self.hangup_class()
        hangup.body_complete = True
        scope = {
            "type": "http", "method": "POST", "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
            "headers": self.headers, "http_version": "1.1", "scheme": "http",
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "state": {},
            "extensions": {self.hangup_key: hangup},
        }  # fmt: skip
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                self.sent, self.sent_cpu = True, time.thread_time_ns()

        self.sent = False
        start = time.thread_time_ns()
        await self.app(scope, receive, send)
        end = time.thread_time_ns()
        return (self.sent_cpu - start) / 1000, (end - self.sent_cpu) / 1000


async def lifespan(app: Any, messages: asyncio.Queue[dict[str, str]]) -> asyncio.Task[None]:
    up = asyncio.Event()

    async def send(message: dict[str, str]) -> None:
        if message["type"] == "lifespan.startup.complete":
            up.set()

    await messages.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "state": {}}, messages.get, send))
    await asyncio.wait_for(up.wait(), 120)
    return task


async def measure(upstream_port: int, args: argparse.Namespace) -> dict[str, Any]:
    from pinfactory.gateway import create_app
    from pinfactory.team import load_team

    folder = Path(tempfile.mkdtemp(prefix="pinfactory-critical-"))
    team = load_team(bench.team_file(folder, upstream_port, args.durability))
    app = create_app(team, served=True)
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    task = await lifespan(app, messages)
    driver = Driver(app, bench.Target("pinfactory", 0, "auto").body(), bench.KEY)
    for _ in range(args.warmup):
        await driver.one()
    batches: list[tuple[float, float]] = []
    for _ in range(args.batches):
        times = [await driver.one() for _ in range(args.requests // args.batches)]
        batches.append(
            (statistics.median(t[0] for t in times), statistics.median(t[1] for t in times))
        )
    lines: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    after = 0

    def tracer(frame: Any, event: str, _: Any) -> Any:
        nonlocal after
        if driver.sent:
            after += event == "line"
            return tracer
        code = frame.f_code
        where = f"{code.co_filename}:{code.co_name}"
        if code.co_filename == "<string>":  # a dataclass's generated __init__: name its class
            owner = frame.f_locals.get("self") or frame.f_locals.get("__dataclass_self__")
            where += "/" + type(owner).__name__
        if event == "line":
            lines[component(where)] += 1
        elif event == "call":
            calls[component(where)] += 1
        return tracer

    sys.settrace(tracer)
    try:
        for _ in range(args.traced):
            await driver.one()
    finally:
        sys.settrace(None)
    await messages.put({"type": "lifespan.shutdown"})
    await task
    n = args.traced
    return {
        "critical_cpu_us": round(statistics.median(b[0] for b in batches), 1),
        "after_send_cpu_us": round(statistics.median(b[1] for b in batches), 1),
        "critical_cpu_us_batches": [round(b[0], 1) for b in batches],
        "critical_lines": round(sum(lines.values()) / n, 1),
        "critical_calls": round(sum(calls.values()) / n, 1),
        "after_send_lines": round(after / n, 1),
        "lines_by_component": {k: round(v / n, 1) for k, v in lines.most_common()},
    }


def side(args: argparse.Namespace, src: Path | None, upstream_port: int) -> dict[str, Any]:
    """This checkout's figures, or ``src``'s from a process of its own."""
    if src is None:
        import uvloop

        return uvloop.run(measure(upstream_port, args))
    command = [sys.executable, str(HERE), "--upstream-port", str(upstream_port), "--json"]
    command += ["--requests", str(args.requests), "--batches", str(args.batches)]
    command += ["--traced", str(args.traced), "--warmup", str(args.warmup)]
    command += ["--durability", args.durability]
    env = bench.python_env(src)
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def show(name: str, figures: dict[str, Any]) -> None:
    print(
        f"{name}: {figures['critical_lines']:.0f} Python lines and {figures['critical_calls']:.0f}"
        f" calls before the answer's send, {figures['after_send_lines']:.0f} lines after it; "
        f"thread CPU {figures['critical_cpu_us']:.0f} us before, "
        f"{figures['after_send_cpu_us']:.0f} us after (median of batches)"
    )
    for part, count in figures["lines_by_component"].items():
        print(f"  {count:7.1f}  {part}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout's src/ to measure too")
    parser.add_argument("--requests", type=int, default=3000, help="timed requests")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--traced", type=int, default=100, help="requests under settrace")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--durability", choices=["full", "group", "journal"], default="journal")
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=bench.RESULTS / "critical_path.json")
    args = parser.parse_args()
    if args.upstream_port is not None:  # a baseline's side, run by the main process
        import uvloop

        print(json.dumps(uvloop.run(measure(args.upstream_port, args))))
        return
    port = bench.free_port()
    report = run_record.header("critical_path")
    with bench.process(bench.upstream_args(port), port, bench.python_env()):
        if args.baseline is not None:
            report["baseline"] = side(args, args.baseline, port)
        report["now"] = side(args, None, port)
    if "baseline" in report:
        show("baseline", report["baseline"])
    show("this checkout", report["now"])
    run_record.write(args.out, report)


if __name__ == "__main__":
    main()
