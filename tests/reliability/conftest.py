"""Shared-state fixtures: a Redis from ``PINFACTORY_TEST_REDIS_URL`` (scripts/redis.sh).

Without one the Redis tests skip, except in CI (``CI=true``), where it is a failure.
Each test gets its own key namespace, so tests (and helpers sharing the server) never
see each other's counters.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinfactory.gateway.server import free_port
from tests.ledger.conftest import pg_location

__all__ = ["RedisServer", "pg_location"]


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("PINFACTORY_TEST_REDIS_URL", "")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PINFACTORY_TEST_REDIS_URL is not set: run scripts/redis.sh")
        pytest.skip("PINFACTORY_TEST_REDIS_URL not set (scripts/redis.sh prints one)")
    return url


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:12]


class RedisServer:
    """A redis-server of the test's own on a free loopback port, to stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis(redis_url: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis this test may stop (``redis_url`` only decides whether Redis tests run)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/redis.sh installs it)")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
