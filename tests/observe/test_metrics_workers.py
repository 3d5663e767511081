"""``/metrics`` under ``pinfactory serve --workers 2``: every scrape reports the whole gateway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from pinfactory.gateway.server import free_port
from tests.observe.test_metrics import scrape, value

SRC = Path(__file__).resolve().parents[2] / "src"
TEAM = """\
name: calc
members:
  - name: calculator
    kind: calculator
routing:
  kind: rules
  fallback: calculator
ledger: {{path: '{ledger}'}}
"""


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    tmp: Path  # the serve process's TMPDIR, where it makes the metrics folder

    def counter_files(self) -> list[Path]:
        return sorted(self.tmp.glob("pinfactory-metrics-*/counter_*.db"))


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("workers")
    team, tmp = root / "team.yaml", root / "tmp"
    tmp.mkdir()
    team.write_text(TEAM.format(ledger=root / "ledger.db"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "TMPDIR": str(tmp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "pinfactory", "serve", "--team", str(team),
               "--port", str(port), "--workers", "2"]  # fmt: skip
    log = root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", process, tmp)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(served.url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "pinfactory serve --workers 2 did not start"
            time.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ask(url: str) -> str:
    """One request on a new client, hence a new connection the kernel may give either worker."""
    with OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "17 * 3"}]
        )
    return reply.choices[0].message.content or ""


def test_every_scrape_counts_the_requests_of_both_workers(two_workers: Served) -> None:
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):  # until both workers have answered some (nearly always round one)
            answers = list(pool.map(ask, [two_workers.url] * 40))
            assert all("51" in answer for answer in answers), answers[:3]
            sent += len(answers)
            if len(two_workers.counter_files()) >= 2:
                break
    assert len(two_workers.counter_files()) == 2, "one worker took every connection"
    for _ in range(6):  # new connections: the scrape reaches either worker
        samples = scrape(two_workers.url)
        labels = {"member": "calculator", "unit": "default"}
        assert value(samples, "pinfactory_requests_total", status="200", **labels) == sent
        assert value(samples, "pinfactory_request_duration_seconds_count",
                     member="calculator") == sent  # fmt: skip
        assert value(samples, "pinfactory_tokens_total", type="input", **labels) > 0
        assert value(samples, "pinfactory_workers") == 2


def test_the_metrics_folder_goes_when_serve_stops(two_workers: Served) -> None:
    folders = list(two_workers.tmp.glob("pinfactory-metrics-*"))
    assert len(folders) == 1
    two_workers.process.send_signal(signal.SIGINT)
    assert two_workers.process.wait(timeout=30) == 0
    assert not folders[0].exists()
