"""A console session under ``pinfactory serve --workers 2``: one login, good on every worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pinfactory.gateway.server import free_port
from tests.console.conftest import ADMIN, session_cookie

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
TEAM = """\
name: calc
members:
  - {{name: calculator, kind: calculator}}
routing: {{kind: rules, fallback: calculator}}
keys:
  - {{key: {key}, unit: ops, user: carol, admin: true}}
ledger: {{path: '{ledger}'}}
"""


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(url, metrics folder) of a two-worker gateway started without a console secret."""
    root = tmp_path_factory.mktemp("console-workers")
    team, tmp = root / "team.yaml", root / "tmp"
    tmp.mkdir()
    team.write_text(TEAM.format(key=ADMIN, ledger=root / "ledger.db"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "TMPDIR": str(tmp)}
    for name in ("PINFACTORY_CONSOLE_SECRET", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pinfactory", "serve", "--team", str(team),
               "--port", str(port), "--workers", "2"]  # fmt: skip
    log = root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "pinfactory serve --workers 2 did not start"
            time.sleep(0.1)
        yield url, tmp
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_session_cookie_from_one_worker_is_good_on_the_other(
    two_workers: tuple[str, Path],
) -> None:
    url, tmp = two_workers
    cookie = session_cookie(url, ADMIN)
    seen: set[str] = set()
    for _ in range(3):  # until both workers have answered (nearly always round one)
        for _ in range(30):  # a new client each time: a new connection, either worker
            with httpx.Client(base_url=url) as client:
                page = client.get("/ui/live", headers={"cookie": cookie})
                asked = client.post(
                    "/v1/chat/completions",
                    json={"model": "auto", "messages": [{"role": "user", "content": "2 + 2"}]},
                    headers={"authorization": f"Bearer {ADMIN}"},
                )
            assert page.status_code == 200, page.headers.get("location")
            assert "Live" in page.text and "/ui/login" not in str(page.url)
            assert asked.status_code == 200
        seen = {p.name for p in tmp.glob("pinfactory-metrics-*/counter_*.db")}
        if len(seen) >= 2:
            break
    assert len(seen) == 2, "one worker took every connection"
