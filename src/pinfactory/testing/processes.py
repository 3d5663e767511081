"""``pinfactory serve`` in child processes, for tests and benches that cross a process.

    with served(team_path, log=tmp_path / "gateway.log", count=2) as (a, b):
        httpx.post(a.url + "/v1/chat/completions", ...)
        os.kill(b.process.pid, signal.SIGKILL)    # crash tests kill one

Each child runs this checkout's code (the ``src`` folder ``pinfactory`` was imported
from goes first on ``PYTHONPATH``), listens on a free loopback port, and counts as
started once ``GET /health/ready`` answers 200. Output goes to ``log`` (appended, so a
restarted gateway's lines follow the first one's).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pinfactory
from pinfactory.gateway.server import free_port

SRC = Path(pinfactory.__file__).resolve().parents[1]


@dataclass(frozen=True)
class ServedGateway:
    """A gateway child process: its base URL (``http://127.0.0.1:PORT``) and process."""

    url: str
    process: subprocess.Popen[bytes]


def start_gateway(
    team: Path,
    *,
    log: Path,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 120.0,
) -> ServedGateway:
    """Start ``pinfactory serve --team TEAM`` and wait until it is ready.

    ``env`` adds to this process's environment. Raises ``RuntimeError`` (with the end of
    the log) when the process exits or is not ready within ``ready_timeout_s``.
    """
    port = port or free_port()
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pinfactory", "serve", "--team", str(team)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=environ, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with {process.returncode}: {_tail(log)}")
        if _ready(url):
            return ServedGateway(url, process)
        time.sleep(0.05)
    stop_gateway(ServedGateway(url, process))
    raise RuntimeError(f"gateway not ready within {ready_timeout_s:g}s: {_tail(log)}")


def stop_gateway(gateway: ServedGateway, timeout_s: float = 30.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after ``timeout_s``; nothing if it is gone."""
    if gateway.process.poll() is not None:
        return
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        gateway.process.wait()


@contextmanager
def served(
    team: Path, *, log: Path, count: int = 1, env: Mapping[str, str] | None = None
) -> Iterator[list[ServedGateway]]:
    """``count`` gateways on one team file (one ledger, one Redis), stopped on exit."""
    started: list[ServedGateway] = []
    try:
        for _ in range(count):
            started.append(start_gateway(team, log=log, env=env))
        yield started
    finally:
        for gateway in started:
            stop_gateway(gateway)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/ready", timeout=1) as reply:
            return int(reply.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(log: Path, size: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"
