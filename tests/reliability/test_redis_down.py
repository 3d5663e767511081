"""What the gateway does when its Redis goes away, and when it comes back.

The policy (docs/reliability.md): with ``state: {redis_url}`` configured, every request
that needs the shared state (rate limits, breakers, least_busy counts) fails closed while
Redis is unreachable: 503 ``state_unavailable`` naming it, ``Retry-After: 1``,
``x-should-retry: true``, one ledger row each; ``/health/ready`` answers 503 naming the
failing check. A request already admitted when Redis goes finishes normally. When Redis is
back, the gateway is ready again without a restart.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import parse_team
from pinfactory.testing.faults import Fault, FaultPlan, FaultUpstream, echo_answer, fault_upstream
from tests.reliability.conftest import RedisServer

HI = {"model": "auto", "messages": [{"role": "user", "content": "is redis there"}]}
SLOW = {"model": "slow", "messages": [{"role": "user", "content": "in flight"}]}


@pytest.fixture
def upstream() -> Iterator[FaultUpstream]:
    with fault_upstream(FaultPlan(slow_s=1.0)) as server:
        yield server


@pytest.fixture
def gateway(own_redis: RedisServer, upstream: FaultUpstream, tmp_path: Path) -> Iterator[str]:
    team = parse_team(
        "name: redis-down\n"
        "members:\n"
        f"  - {{name: echo, kind: openai_http, settings: {{base_url: '{upstream.url}', "
        "model: m}}\n"
        f"  - {{name: slow, kind: openai_http, settings: {{base_url: "
        f"'{upstream.fault_url(Fault.SLOW)}', model: m}}}}\n"
        "routing: {kind: rules, fallback: echo}\n"
        "rate_limits: [{per: unit, rpm: 1000, concurrent: 50}]\n"
        f"state: {{redis_url: '{own_redis.url}'}}\n"
        f"ledger: {{path: '{tmp_path / 'ledger.db'}'}}\n"
        "observe: {access_log: false}\n",
        "redis-down.yaml",
        {},
    )
    with serve_in_thread(create_app(team)) as url:
        yield url


def ready(client: httpx.Client, url: str) -> httpx.Response:
    return client.get(url + "/health/ready")


def test_redis_down_fails_closed_with_a_clear_503_and_recovers(
    gateway: str, own_redis: RedisServer, tmp_path: Path
) -> None:
    with httpx.Client(timeout=10) as client:
        assert ready(client, gateway).json()["checks"]["state"] == "ok"
        assert client.post(gateway + "/v1/chat/completions", json=HI).status_code == 200

        own_redis.stop()
        not_ready = ready(client, gateway)
        assert not_ready.status_code == 503
        assert not_ready.json()["status"] == "not ready"
        assert not_ready.json()["checks"]["state"] != "ok"
        for body in (HI, {**HI, "stream": True}):
            refused = client.post(gateway + "/v1/chat/completions", json=body)
            assert refused.status_code == 503
            error = refused.json()["error"]
            assert error["code"] == "state_unavailable"
            assert own_redis.url in error["message"]
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["x-should-retry"] == "true"

        own_redis.start()  # the same port: the gateway reconnects by itself
        deadline = time.monotonic() + 10
        while ready(client, gateway).status_code != 200:
            assert time.monotonic() < deadline, "not ready again after Redis came back"
            time.sleep(0.1)
        again = client.post(gateway + "/v1/chat/completions", json=HI)
        assert again.status_code == 200
        assert again.json()["choices"][0]["message"]["content"] == echo_answer("is redis there")

    db = sqlite3.connect(tmp_path / "ledger.db")
    try:
        statuses = [row[0] for row in db.execute("SELECT status FROM requests ORDER BY rowid")]
    finally:
        db.close()
    assert statuses == [200, 503, 503, 200]  # the refusals are booked too


def test_a_request_in_flight_when_redis_goes_is_answered(
    gateway: str, own_redis: RedisServer, upstream: FaultUpstream
) -> None:
    replies: list[httpx.Response] = []

    def ask() -> None:
        with httpx.Client(timeout=10) as client:
            replies.append(client.post(gateway + "/v1/chat/completions", json=SLOW))

    sender = threading.Thread(target=ask)
    sender.start()
    deadline = time.monotonic() + 5
    while upstream.hits(Fault.SLOW) == 0:  # admitted (counted in Redis), now upstream
        assert time.monotonic() < deadline
        time.sleep(0.01)
    own_redis.stop()
    sender.join(timeout=10)
    assert replies and replies[0].status_code == 200
    assert replies[0].json()["choices"][0]["message"]["content"] == echo_answer("in flight")
