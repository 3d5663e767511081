"""How much latency the gateway adds over its upstream, and how much it can carry.

Processes on loopback: an instant OpenAI-compatible upstream
(``pinfactory.testing.upstreams.instant_upstream`` under uvicorn), then, one
after the other, a pinfactory gateway per configuration (worker processes x
ledger durability; the team has one ``openai_http`` member pointing at the
upstream and a SQLite ledger with the audit chain) and, with
``--with-litellm [PATH]``, LiteLLM's proxy in front of the same upstream with the
same worker counts (without PATH the script installs ``litellm[proxy]`` into a
virtual environment of its own). Everything is measured in one run, so the ratio
compares figures taken on the same machine under the same load; ``--rounds N``
alternates LiteLLM and pinfactory N times, so a neighbour's burst of load cannot
favour one side. pinfactory runs with its reliability features on: retries, a
circuit breaker per member and a rate limit per key counted on every request.

``--floor`` adds, in every round, a bare ASGI relay on the same server stack
(``bench/relay_floor.py``: uvicorn + httptools + uvloop with pinfactory's protocol, the
same HTTP client as pinfactory's members, nothing but forwarding): its added latency is
the floor of any gateway built on this stack on this machine, and pinfactory's distance
above it is what pinfactory itself costs. Each round's order alternates (LiteLLM, floor,
pinfactory; then the reverse), and every row carries its round's ratios to LiteLLM
(throughput, and server CPU per request, which a neighbour's burst of load moves less).

- Latency: one client sends sequential requests over one keep-alive
  connection (a raw HTTP/1.1 client on a blocking socket, so the client adds
  next to nothing); "added" is the gateway's p50/p99 minus the upstream's.
- Throughput: ``wrk`` (C, one thread) at a fixed concurrency posting the same
  JSON body; when wrk is not installed (``apt-get install -y wrk``) an asyncio
  client in a separate process does the same. The output names the one used.

Prints a table and writes ``bench/results/gateway_overhead.json``.

    python bench/gateway_overhead.py [--configs 1:full,1:group,2:full,2:group]
        [--with-litellm [PATH]] [--rounds 3] [--baseline OTHER_CHECKOUT/src] [--floor]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import overhead_bodies  # bench/ is on the path when this script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PROMPT = "Say ok."
KEY = "sk-bench-4f0c2a9e7d1b46c8a3e5f7091b2d4c6e"


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    model: str

    def body(self) -> bytes:
        message = {"role": "user", "content": PROMPT}
        return json.dumps({"model": self.model, "messages": [message]}).encode()

    def request(self) -> bytes:
        body = self.body()
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\n"
            "Content-Type: application/json\r\n"
            f"Authorization: Bearer {KEY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port} after {timeout_s:g}s")


@contextmanager
def process(
    args: list[str], port: int, env: dict[str, str] | None = None, start_s: float = 120.0
) -> Iterator[int]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_ready(port, proc, start_s)
            yield proc.pid
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def python_env(src: Path = ROOT / "src") -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def upstream_args(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "pinfactory.testing.upstreams:instant_upstream",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def team_file(folder: Path, upstream_port: int, durability: str, reliability: bool = True) -> Path:
    """One ``openai_http`` member, a unit key (both gateways check a bearer key).

    ``reliability``: retries, a breaker and a rate limit on (as in production); off, the
    file has only what a checkout from before them reads (``--bare-team``).
    """
    path = folder / "bench-team.yaml"
    on = (
        # reliability on, as in production: retries and a breaker per member (the
        # defaults), and a rate limit per key that every request is counted against
        "upstream: {retries: 2, breaker: {enabled: true}}\n"
        "rate_limits: [{per: key, rpm: 1000000000, tpm: 1000000000000, concurrent: 100000}]\n"
        "observe: {access_log: false}\n"
    )
    path.write_text(
        "name: bench\n"
        f"keys: [{{key: {KEY}, unit: bench}}]\n"
        "members:\n"
        "  - name: upstream\n"
        "    kind: openai_http\n"
        f"    settings: {{base_url: 'http://127.0.0.1:{upstream_port}/v1', model: instant}}\n"
        "routing: {kind: rules, fallback: upstream}\n"
        f"ledger: {{path: '{folder / 'ledger.db'}', durability: {durability}}}\n"
        + (on if reliability else "")
    )
    return path


def litellm_config(folder: Path, upstream_port: int) -> Path:
    path = folder / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: instant\n"
        "    litellm_params:\n"
        "      model: openai/instant\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: sk-unused\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {KEY}\n"
    )
    return path


class Connection:
    """One keep-alive HTTP/1.1 connection; reads responses by Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def exchange(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(b":", 1) for line in lines[1:])
        length = {k.strip().lower(): v for k, v in headers.items()}.get(b"content-length")
        if length is None:
            raise RuntimeError("response has no Content-Length; this client reads no chunks")
        size = int(length)
        while len(rest) < size:
            rest += self._recv()
        self.buffer = rest[size:]
        return status, rest[:size]

    def _fill(self) -> None:
        self.buffer += self._recv()

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def check_answer(target: Target, status: int, body: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"{target.name}: HTTP {status}: {body[:300]!r}")
    reply = json.loads(body)
    text = reply["choices"][0]["message"]["content"]
    if text != "ok":
        raise RuntimeError(f"{target.name}: unexpected answer {text!r}")


def latency(target: Target, requests: int, warmup: int) -> dict[str, float]:
    raw = target.request()
    conn = Connection(target.port)
    try:
        check_answer(target, *conn.exchange(raw))
        for _ in range(warmup):
            conn.exchange(raw)
        samples = []
        for _ in range(requests):
            t0 = time.perf_counter_ns()
            status, body = conn.exchange(raw)
            samples.append((time.perf_counter_ns() - t0) / 1e6)
            if status != 200:
                raise RuntimeError(f"{target.name}: HTTP {status}: {body[:300]!r}")
    finally:
        conn.close()
    samples.sort()
    return {
        "requests": requests,
        "p50_ms": round(percentile(samples, 50), 4),
        "p90_ms": round(percentile(samples, 90), 4),
        "p99_ms": round(percentile(samples, 99), 4),
        "mean_ms": round(statistics.fmean(samples), 4),
    }


def percentile(sorted_samples: list[float], q: float) -> float:
    index = (len(sorted_samples) - 1) * q / 100
    low = int(index)
    high = min(low + 1, len(sorted_samples) - 1)
    return sorted_samples[low] + (sorted_samples[high] - sorted_samples[low]) * (index - low)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
done = function(summary, latency, requests)
  io.write(string.format("BENCH non2xx=%d errors=%d\\n",
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
  io.write(string.format("BENCH p50_us=%d p99_us=%d\\n",
    latency:percentile(50), latency:percentile(99)))
end
"""


def throughput_wrk(
    target: Target, concurrency: int, seconds: float, folder: Path
) -> dict[str, Any]:
    script = folder / f"wrk-{target.name}.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(target.body().decode()), key=KEY))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{target.port}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"BENCH non2xx=(\d+) errors=(\d+)", out)
    lat = re.search(r"BENCH p50_us=(\d+) p99_us=(\d+)", out)
    assert bad is not None and lat is not None, out
    return {
        "tool": "wrk",
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": total,
        "requests_per_s": round(rps, 1),
        "non_2xx": int(bad.group(1)),
        "socket_errors": int(bad.group(2)),
        "p50_ms": int(lat.group(1)) / 1000,
        "p99_ms": int(lat.group(2)) / 1000,
    }


ASYNC_CLIENT = r"""
import asyncio, json, sys, time
port, conc, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
raw = sys.argv[4].encode().decode("unicode_escape").encode("latin-1")
async def worker(deadline, counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.monotonic() < deadline:
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        counts[0 if status == 200 else 1] += 1
    writer.close()
async def main():
    counts = [0, 0]
    t0 = time.monotonic()
    await asyncio.gather(*(worker(t0 + seconds, counts) for _ in range(conc)))
    print(json.dumps({"ok": counts[0], "bad": counts[1], "elapsed": time.monotonic() - t0}))
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""


def throughput_asyncio(target: Target, concurrency: int, seconds: float) -> dict[str, Any]:
    raw = target.request().decode("latin-1").encode("unicode_escape").decode()
    out = subprocess.run(
        [sys.executable, "-c", ASYNC_CLIENT, str(target.port), str(concurrency), str(seconds), raw],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    result = json.loads(out)
    total = result["ok"] + result["bad"]
    return {
        "tool": "asyncio",
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": total,
        "requests_per_s": round(total / result["elapsed"], 1),
        "non_2xx": result["bad"],
        "socket_errors": 0,
    }


@dataclass(frozen=True)
class Config:
    workers: int
    durability: str

    @property
    def label(self) -> str:
        return f"pinfactory {self.workers}w {self.durability}"


def parse_configs(text: str) -> list[Config]:
    configs = []
    for part in text.split(","):
        workers, _, durability = part.strip().partition(":")
        if not workers.isdigit() or durability not in ("full", "group", "journal"):
            raise SystemExit(f"--configs: '{part}' is not WORKERS:full, :group or :journal")
        configs.append(Config(int(workers), durability))
    return configs


def load_generator(args: argparse.Namespace) -> str:
    return "wrk" if shutil.which("wrk") and not args.asyncio_client else "asyncio"


def fsync_ms(folder: Path, count: int = 200) -> float:
    """p50 of append-4KiB-then-fsync in ``folder``: what each ledger commit waits for.

    With one client every request waits for one commit, so the added p50 includes it;
    on a shared machine it moves with the neighbours' disk traffic.
    """
    samples = []
    path = folder / "fsync-probe"
    with path.open("ab") as probe:
        for _ in range(count):
            probe.write(b"x" * 4096)
            t0 = time.perf_counter_ns()
            probe.flush()
            os.fsync(probe.fileno())
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    path.unlink()
    return round(percentile(sorted(samples), 50), 4)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process and all its descendants; None without /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        stats = list(Path("/proc").glob("[0-9]*/stat"))
    except OSError:
        return None
    for stat in stats:
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
        times[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / tick
    if pid not in times:
        return None
    family, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in family:
                family.add(child)
                frontier.append(child)
    return sum(times[p] for p in family)


def measure(
    target: Target, args: argparse.Namespace, folder: Path, pid: int | None = None
) -> dict[str, Any]:
    """Latency with one client, then throughput; with ``pid``, the server's CPU per request."""
    print(f"  latency: {args.requests} sequential requests, one connection", flush=True)
    before = cpu_seconds(pid) if pid is not None else None
    result: dict[str, Any] = {"latency": latency(target, args.requests, args.warmup)}
    after = cpu_seconds(pid) if pid is not None else None
    if before is not None and after is not None:  # warm-up included: the same for every side
        served = args.requests + args.warmup + 1
        result["latency"]["server_cpu_ms_per_request"] = round((after - before) * 1000 / served, 4)
    print(f"  throughput: {args.concurrency} connections for {args.seconds:g}s", flush=True)
    before = cpu_seconds(pid) if pid is not None else None
    if load_generator(args) == "wrk":
        tput = throughput_wrk(target, args.concurrency, args.seconds, folder)
    else:
        tput = throughput_asyncio(target, args.concurrency, args.seconds)
    after = cpu_seconds(pid) if pid is not None else None
    if before is not None and after is not None and tput["requests"]:
        tput["server_cpu_ms_per_request"] = round((after - before) * 1000 / tput["requests"], 4)
    result["throughput"] = tput
    return result


def added(gateway: dict[str, Any], direct: dict[str, Any]) -> dict[str, float]:
    g, d = gateway["latency"], direct["latency"]
    return {
        "p50_ms": round(g["p50_ms"] - d["p50_ms"], 4),
        "p99_ms": round(g["p99_ms"] - d["p99_ms"], 4),
    }


def gateway(
    config: Config, up_port: int, folder: Path, args: argparse.Namespace, src: Path | None = None
) -> Any:
    """Serve ``config`` from this checkout's code, or from ``src`` (a baseline's src/)."""
    port = free_port()
    name = f"{config.workers}-{config.durability}-{'baseline' if src else 'now'}-"
    place = Path(tempfile.mkdtemp(prefix=name, dir=folder))  # one per round
    team = team_file(place, up_port, config.durability, reliability=not args.bare_team)
    serve = [sys.executable, "-m", "pinfactory", "serve", "--team", str(team)]
    serve += ["--port", str(port), "--workers", str(config.workers)]
    with process(serve, port, python_env(src or ROOT / "src")) as pid:
        print(f"{config.label}{' (baseline)' if src else ''}:")
        fsync = fsync_ms(team.parent)
        result = measure(Target("pinfactory", port, "auto"), args, folder, pid)
        result["fsync_p50_ms"] = fsync
        if args.bodies and src is None:  # the faithful paths (tools, streams) against plain
            result["bodies"] = overhead_bodies.compare(
                up_port, port, KEY, PROMPT, args.requests, args.warmup,
                cpu=lambda: cpu_seconds(pid),
            )  # fmt: skip
        return result


LITELLM_VERSION = "1.110.2"
LITELLM_VENV = Path.home() / ".cache" / "pinfactory" / f"litellm-{LITELLM_VERSION}"


PROXY_REQUIREMENTS = """
import importlib.metadata as m
from packaging.requirements import Requirement
for line in m.requires("litellm"):
    req = Requirement(line)
    if req.marker is None or not req.marker.evaluate({"extra": "proxy"}):
        continue
    if req.name == "litellm-proxy":
        continue  # the proxy's code ships in litellm's own wheel
    req.marker = None
    print(req.name if req.name.startswith("litellm-") else str(req).replace(" ", ""))
"""


def install_litellm() -> str:
    """LiteLLM's proxy in a virtual environment of its own (created once); its script.

    ``litellm[proxy]==VERSION`` when the index has all of it. Its ``proxy`` extra names
    sibling packages pinned to builds PyPI may not carry (``litellm-proxy``, whose code
    ships inside litellm's own wheel, and ``litellm-proxy-extras`` / ``litellm-enterprise``
    ``.postN`` releases); then litellm itself is installed at VERSION and the extra's
    other requirements as it states them, the siblings at their newest release.
    :func:`litellm_versions` records what ran.
    """
    script = LITELLM_VENV / "bin" / "litellm"
    if script.exists():
        return str(script)
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    python = str(LITELLM_VENV / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet"]
    if subprocess.run([*pip, f"litellm[proxy]=={LITELLM_VERSION}"]).returncode == 0:
        return str(script)
    print("the proxy extra's pinned siblings are not all on the index; installing its parts")
    subprocess.run([*pip, f"litellm=={LITELLM_VERSION}"], check=True)
    wanted = subprocess.run(
        [python, "-c", PROXY_REQUIREMENTS], capture_output=True, text=True, check=True
    ).stdout.split()
    subprocess.run([*pip, *wanted], check=True)
    return str(script)


def litellm_versions(script: str) -> dict[str, str]:
    """The versions of litellm and its proxy's sibling packages in ``script``'s venv."""
    python = str(Path(script).parent / "python")
    code = (
        "import importlib.metadata as m, json\n"
        "names = ('litellm', 'litellm-proxy-extras', 'litellm-enterprise', 'fastapi', 'uvicorn')\n"
        "found = {}\n"
        "for n in names:\n"
        "    try:\n"
        "        found[n] = m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(found))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return dict(json.loads(out.stdout)) if out.returncode == 0 else {}


def floor(up_port: int, folder: Path, args: argparse.Namespace) -> Any:
    """The bare relay (``bench/relay_floor.py``) under ``pinfactory serve``'s uvicorn settings."""
    port = free_port()
    serve = [sys.executable, str(ROOT / "bench" / "relay_floor.py"), "--port", str(port)]
    env = dict(python_env(), RELAY_UPSTREAM=f"http://127.0.0.1:{up_port}")
    with process(serve, port, env) as pid:
        print("floor (bare relay):")
        return measure(Target("floor", port, "instant"), args, folder, pid)


def litellm(workers: int, up_port: int, folder: Path, args: argparse.Namespace) -> Any:
    port = free_port()
    cmd = [args.with_litellm, "--config", str(litellm_config(folder, up_port))]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)]
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    with process(cmd, port, env, start_s=600.0) as pid:  # it imports a lot
        print(f"litellm proxy {workers}w:")
        return measure(Target("litellm", port, "instant"), args, folder, pid)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every round; the report so far is written to ``args.out`` after each (a long run
    on a busy machine keeps what it measured). A target that fails to start within its
    time is noted in ``failures`` and its round goes on without it."""
    folder = Path(tempfile.mkdtemp(prefix="pinfactory-bench-"))
    configs = parse_configs(args.configs)
    up_port = free_port()
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    with process(upstream_args(up_port), up_port, python_env()) as pid:
        print(f"load generator: {load_generator(args)}")
        print("instant upstream, direct:")
        direct = measure(Target("upstream", up_port, "instant"), args, folder, pid)
        rows.append({"target": "upstream", "workers": 1, "durability": None, **direct})
        for turn in range(1, args.rounds + 1):  # the order alternates round by round
            print(f"round {turn} of {args.rounds}", flush=True)
            theirs: dict[int, dict[str, Any]] = {}
            steps = ["litellm", "floor", *configs]
            for step in steps if turn % 2 == 1 else steps[::-1]:
                if step == "litellm" and args.with_litellm:
                    for workers in sorted({c.workers for c in configs}):
                        try:
                            theirs[workers] = litellm(workers, up_port, folder, args)
                        except (RuntimeError, subprocess.SubprocessError) as exc:
                            failures.append(f"round {turn}: litellm {workers}w: {exc}")
                            print(f"  {failures[-1]}", flush=True)
                            continue
                        rows.append({"target": "litellm", "workers": workers, "durability": None})
                        rows[-1].update(round=turn, **theirs[workers])
                elif step == "floor" and args.floor:
                    try:
                        relayed = floor(up_port, folder, args)
                    except (RuntimeError, subprocess.SubprocessError) as exc:
                        failures.append(f"round {turn}: floor: {exc}")
                        print(f"  {failures[-1]}", flush=True)
                        continue
                    rows.append({"target": "floor", "workers": 1, "durability": None})
                    rows[-1].update(round=turn, **relayed)
                elif isinstance(step, Config):
                    config = step
                    try:
                        if args.baseline:  # just before the same configuration of this checkout
                            base = gateway(config, up_port, folder, args, args.baseline.resolve())
                            rows.append({"target": "baseline", "workers": config.workers, **base})
                            rows[-1].update(durability=config.durability, round=turn)
                        ours = gateway(config, up_port, folder, args)
                    except (RuntimeError, subprocess.SubprocessError) as exc:
                        failures.append(f"round {turn}: {config.label}: {exc}")
                        print(f"  {failures[-1]}", flush=True)
                        continue
                    row = {"target": "pinfactory", "workers": config.workers, "round": turn}
                    row.update(durability=config.durability, **ours)
                    rows.append(row)
            for row in rows:  # this round's ratios, once LiteLLM's figures are in
                if row.get("round") == turn and row["target"] != "litellm":
                    compare(row, theirs.get(row["workers"]))
            write(args.out, report(args, rows, direct, failures))
    shutil.rmtree(folder, ignore_errors=True)
    return report(args, rows, direct, failures)


def compare(row: dict[str, Any], theirs: dict[str, Any] | None) -> None:
    """Put the round's ratios to LiteLLM (same workers) on ``row``: throughput, and
    LiteLLM's server CPU per request over ``row``'s."""
    if theirs is None:
        return
    rps = theirs["throughput"]["requests_per_s"]
    row["ratio_vs_litellm"] = round(row["throughput"]["requests_per_s"] / rps, 1)
    cpu = theirs["throughput"].get("server_cpu_ms_per_request")
    mine = row["throughput"].get("server_cpu_ms_per_request")
    if cpu and mine:
        row["cpu_ratio_vs_litellm"] = round(cpu / mine, 1)


def report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    direct: dict[str, Any],
    failures: list[str],
) -> dict[str, Any]:
    for row in rows:
        row["added"] = added(row, direct)
    return {
        "benchmark": "gateway_overhead",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "load_generator": load_generator(args),
        "litellm": litellm_versions(args.with_litellm) if args.with_litellm else None,
        "settings": {
            "configs": args.configs,
            "requests": args.requests,
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "baseline": str(args.baseline) if args.baseline else None,
            "rounds": args.rounds,
            "floor": bool(args.floor),
            "reliability": "off (--bare-team)"
            if args.bare_team
            else "retries 2, a breaker per member, a rate limit per key (rpm, tpm, "
            "concurrent) counted on every request",
        },
        "command": "python " + " ".join(sys.argv),
        "failures": failures,
        "summary": summarise(rows),
        "rows": rows,
    }


def plot_rounds(report: dict[str, Any], png: Path) -> None:
    """Per round: each target's req/s (log scale) and server CPU ms per request."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    series: dict[str, list[tuple[int, float, float]]] = {}
    for row in report["rows"]:
        if "round" not in row:
            continue
        label = row["target"] + (f" ({row['durability']})" if row["durability"] else "")
        tput = row["throughput"]
        cpu = tput.get("server_cpu_ms_per_request") or float("nan")
        series.setdefault(label, []).append((row["round"], tput["requests_per_s"], cpu))
    for label, points in series.items():
        rounds = [p[0] for p in points]
        left.plot(rounds, [p[1] for p in points], marker="o", label=label)
        right.plot(rounds, [p[2] for p in points], marker="o", label=label)
    left.set(yscale="log", xlabel="round", ylabel="req/s, 1 worker (wrk, 32 connections)")
    right.set(yscale="log", xlabel="round", ylabel="server CPU ms per request")
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
        axes.set_xticks(sorted({p[0] for points in series.values() for p in points}))
    left.legend()
    load = report["machine"]["load_average"]
    fig.suptitle(
        f"gateway overhead, alternating rounds on one instant upstream "
        f"(2 cores, load average {load[2]:g} at the end)"
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


# the fastest compiled gateways' published figure: 10,000 req/s on 4 vCPU
COMPILED_PER_CORE = 10_000 / 4


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target and configuration, the median over rounds (and the worst ratio).

    ``per_core_rps`` is 1000 / the median server CPU ms per request: requests served per
    second of one core busy with the gateway's processes (the compiled gateways publish
    10,000 req/s on 4 vCPU, ``COMPILED_PER_CORE`` per core).
    """
    groups: dict[tuple[str, int, str | None], list[dict[str, Any]]] = {}
    for row in rows:
        if row["target"] != "upstream":
            groups.setdefault((row["target"], row["workers"], row["durability"]), []).append(row)
    summary = []
    for (target, workers, durability), runs in groups.items():
        cpu = [r["throughput"]["server_cpu_ms_per_request"] for r in runs
               if r["throughput"].get("server_cpu_ms_per_request")]  # fmt: skip
        entry: dict[str, Any] = {
            "target": target,
            "workers": workers,
            "durability": durability,
            "rounds": len(runs),
            "added_p50_ms": round(statistics.median(r["added"]["p50_ms"] for r in runs), 4),
            "added_p99_ms": round(statistics.median(r["added"]["p99_ms"] for r in runs), 4),
            "requests_per_s": round(
                statistics.median(r["throughput"]["requests_per_s"] for r in runs), 1
            ),
            "cpu_ms_per_request": round(statistics.median(cpu), 4) if cpu else None,
            "one_client_cpu_ms_per_request": _median_of(
                [r["latency"].get("server_cpu_ms_per_request") for r in runs]
            ),
            "per_core_rps": round(1000 / statistics.median(cpu), 1) if cpu else None,
            "compiled_per_core_rps": COMPILED_PER_CORE,
        }
        ratios = [r["ratio_vs_litellm"] for r in runs if "ratio_vs_litellm" in r]
        if ratios:
            entry["ratio_vs_litellm_median"] = statistics.median(ratios)
            entry["ratio_vs_litellm_min"] = min(ratios)
            entry["ratio_vs_litellm_each"] = ratios
            cpu_ratios = [r["cpu_ratio_vs_litellm"] for r in runs if "cpu_ratio_vs_litellm" in r]
            entry["cpu_ratio_vs_litellm_median"] = (
                statistics.median(cpu_ratios) if cpu_ratios else None
            )
            entry["cpu_ratio_vs_litellm_min"] = min(cpu_ratios) if cpu_ratios else None
            entry["cpu_ratio_vs_litellm_each"] = cpu_ratios
        summary.append(entry)
    return summary


def _median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 4) if known else None


def _ms(value: float | None) -> str:
    return f"{value:.3f} ms" if value is not None else "-"


def _times(ratio: float | None) -> str:
    return f"{ratio:.1f}x" if ratio is not None else "-"


def show_summary(report: dict[str, Any]) -> None:
    print(f"\nmedians over {report['settings']['rounds']} round(s):")
    print(
        f"{'target':<12}{'workers':>8}{'ledger':>8}{'added p50':>11}{'added p99':>11}"
        f"{'req/s':>10}{'x litellm':>11}{'(worst)':>9}{'cpu/req':>11}{'req/s/core':>12}"
        f"{'cpu x litellm':>15}{'(worst)':>9}{'cpu/req 1 client':>18}"
    )
    for e in report["summary"]:
        ratio, worst = e.get("ratio_vs_litellm_median"), e.get("ratio_vs_litellm_min")
        cpu, core = e["cpu_ms_per_request"], e["per_core_rps"]
        print(
            f"{e['target']:<12}{e['workers']:>8}{e['durability'] or '-':>8}"
            f"{e['added_p50_ms']:>8.3f} ms{e['added_p99_ms']:>8.3f} ms{e['requests_per_s']:>10.1f}"
            f"{f'{ratio:.1f}x' if ratio is not None else '-':>11}"
            f"{f'{worst:.1f}x' if worst is not None else '-':>9}"
            f"{f'{cpu:.3f} ms' if cpu is not None else '-':>11}"
            f"{f'{core:.0f}' if core is not None else '-':>12}"
            f"{_times(e.get('cpu_ratio_vs_litellm_median')):>15}"
            f"{_times(e.get('cpu_ratio_vs_litellm_min')):>9}"
            f"{_ms(e.get('one_client_cpu_ms_per_request')):>18}"
        )
    print(
        f"req/s/core: 1000 / server CPU ms per request; the compiled gateways publish "
        f"{COMPILED_PER_CORE:,.0f} (10,000 req/s on 4 vCPU, 0.35 ms p50 / 0.94 ms p99 added); "
        "cpu/req 1 client: server CPU per request during the latency run (one connection)"
    )


def show(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print()
    print(
        f"load generator: {report['load_generator']}; latency: 1 client, "
        f"{settings['requests']} requests; throughput: {settings['concurrency']} connections, "
        f"{settings['seconds']:g}s; instant upstream on loopback"
    )
    header = f"{'target':<12}{'workers':>8}{'ledger':>8}{'added p50':>11}{'added p99':>11}"
    print(
        header
        + f"{'req/s':>10}{'errors':>8}{'x litellm':>11}{'cpu/req':>11}{'x litellm':>11}"
        + f"{'fsync p50':>11}"
    )
    for row in report["rows"]:
        tput = row["throughput"]
        ratio, cpu_ratio = row.get("ratio_vs_litellm"), row.get("cpu_ratio_vs_litellm")
        cpu, fsync = tput.get("server_cpu_ms_per_request"), row.get("fsync_p50_ms")
        print(
            f"{row['target']:<12}{row['workers']:>8}{row['durability'] or '-':>8}"
            f"{row['added']['p50_ms']:>8.3f} ms{row['added']['p99_ms']:>8.3f} ms"
            f"{tput['requests_per_s']:>10.1f}{tput['non_2xx'] + tput['socket_errors']:>8}"
            f"{f'{ratio:.1f}x' if ratio is not None else '-':>11}"
            f"{f'{cpu:.3f} ms' if cpu is not None else '-':>11}"
            f"{f'{cpu_ratio:.1f}x' if cpu_ratio is not None else '-':>11}"
            f"{f'{fsync:.3f} ms' if fsync is not None else '-':>11}"
        )
    print(
        "req/s x litellm: throughput over LiteLLM's with the same workers; cpu/req: server "
        "CPU time (all its processes) per request during the throughput run; x litellm: "
        "LiteLLM's cpu/req over ours (the throughput ratio on cores of their own); fsync "
        "p50: one 4 KiB append + fsync in the ledger's folder just before (each commit "
        "waits for one; one client waits for one commit per request)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput run length")
    parser.add_argument(
        "--configs",
        default="1:full,1:group,2:full,2:group",
        help="gateway configurations, WORKERS:DURABILITY, comma-separated",
    )
    parser.add_argument(
        "--with-litellm",
        metavar="PATH",
        nargs="?",
        const="install",
        help="LiteLLM's `litellm` script; without PATH, install LiteLLM's proxy into a "
        "virtual environment of its own",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate LiteLLM and pinfactory this many times"
    )
    parser.add_argument("--asyncio-client", action="store_true", help="do not use wrk")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also serve each configuration from another checkout's src/ (before/after)",
    )
    parser.add_argument(
        "--bare-team",
        action="store_true",
        help="serve both sides without retries, breaker and rate limit (a --baseline "
        "from before them cannot read those settings)",
    )
    parser.add_argument(
        "--bodies",
        action="store_true",
        help="also time tool-calling and streaming bodies against the plain one "
        "(bench/overhead_bodies.py)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also serve a bare ASGI relay on the same stack each round (bench/relay_floor.py)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "gateway_overhead.json")
    args = parser.parse_args()
    if args.with_litellm == "install":
        args.with_litellm = install_litellm()
    report = run(args)
    show(report)
    show_summary(report)
    for failure in report["failures"]:
        print(f"not measured: {failure}")
    for row in report["rows"]:
        if "bodies" in row:
            print(f"\n{row['target']} {row['workers']}w {row['durability']}:", end="")
            overhead_bodies.show(row["bodies"])
    write(args.out, report)
    print(f"wrote {args.out}")
    if args.rounds > 1:
        plot_rounds(report, args.out.with_suffix(".png"))
        print(f"wrote {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
