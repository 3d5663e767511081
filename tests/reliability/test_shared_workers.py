"""Two gateway processes on one PostgreSQL ledger and one Redis.

What one process counts, the other sees: a rate limit is one limit for both, and a
member's circuit breaker opened by failures in one process refuses calls in the other
(which then never reaches the failing upstream).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pinfactory.reliability.state import RedisState
from pinfactory.testing.faults import (
    Fault,
    FaultPlan,
    FaultUpstream,
    echo_answer,
    fault_upstream,
)
from pinfactory.testing.processes import served

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ADMIN = {"authorization": "Bearer sk-admin-0001"}
UNIT = {"authorization": "Bearer sk-sales-0001"}
HI = {"model": "auto", "messages": [{"role": "user", "content": "two workers"}]}


def team_file(tmp_path: Path, dsn: str, redis_url: str, name: str, upstream: FaultUpstream) -> Path:
    path = tmp_path / "shared.yaml"
    path.write_text(
        f"name: {name}\n"
        "members:\n"
        f"  - {{name: good, kind: openai_http, settings: {{base_url: '{upstream.url}', "
        "model: m}}\n"
        f"  - {{name: bad, kind: openai_http, settings: {{base_url: "
        f"'{upstream.fault_url(Fault.SERVER_ERROR)}', model: m}}}}\n"
        "routing: {kind: rules, fallback: good}\n"
        "keys: [{key: sk-sales-0001, unit: sales}, {key: sk-admin-0001, unit: ops, admin: true}]\n"
        "rate_limits: [{per: unit, name: sales, rpm: 4}]\n"
        "upstream: {retries: 0, breaker: {failures: 2, window_s: 60, cooldown_s: 60}}\n"
        f"state: {{redis_url: '{redis_url}'}}\n"
        f"ledger: {{dsn: '{dsn}', durability: group}}\n"
        "observe: {access_log: false}\n"
    )
    return path


@pytest.fixture
def upstream() -> Iterator[FaultUpstream]:
    with fault_upstream() as server:
        yield server


@pytest.fixture
def two_gateways(
    pg_location: str, redis_url: str, namespace: str, upstream: FaultUpstream, tmp_path: Path
) -> Iterator[list[str]]:
    team = team_file(tmp_path, pg_location, redis_url, namespace, upstream)
    with served(team, log=tmp_path / "gateways.log", count=2) as gateways:
        yield [gateway.url for gateway in gateways]


def start_of_a_minute(margin_s: float = 20.0) -> None:
    """Wait, if need be, so that at least ``margin_s`` of the current wall-clock minute
    (a rate-limit window) remain: requests sent now fall in one window, whatever the time."""
    left = 60.0 - time.time() % 60.0
    if left < margin_s:
        time.sleep(left + 0.05)


async def _clear(redis_url: str, namespace: str) -> None:
    state = RedisState(redis_url, namespace=f"pf:{namespace}")
    await state.open()
    keys = [k async for k in state.client.scan_iter(match=f"pf:{namespace}:*")]
    if keys:
        await state.client.delete(*keys)
    await state.close()


def test_two_processes_share_rate_limits_and_breakers(
    two_gateways: list[str], upstream: FaultUpstream, redis_url: str, namespace: str
) -> None:
    a, b = two_gateways
    with httpx.Client(timeout=10) as client:
        ready = client.get(a + "/health/ready").json()
        assert ready["checks"]["state"] == "ok"

        start_of_a_minute()  # the five requests below must share one rpm window
        statuses = [
            client.post(url + "/v1/chat/completions", json=HI, headers=UNIT).status_code
            for url in (a, b, a, b)
        ]
        assert statuses == [200, 200, 200, 200]
        refused = client.post(b + "/v1/chat/completions", json=HI, headers=UNIT)
        assert refused.status_code == 429, refused.text
        assert "over 4 requests a minute" in refused.json()["error"]["message"]
        assert refused.headers["x-should-retry"] == "true"

        pinned = {**HI, "model": "bad"}
        for _ in range(2):  # the admin unit has no rate limit
            failed = client.post(a + "/v1/chat/completions", json=pinned, headers=ADMIN)
            assert failed.status_code == 502
        calls_before = upstream.hits(Fault.SERVER_ERROR)
        seen_by_b = client.get(b + "/admin/breakers", headers=ADMIN).json()["data"]
        assert {d["member"]: d["state"] for d in seen_by_b} == {"good": "closed", "bad": "open"}
        refused_by_b = client.post(b + "/v1/chat/completions", json=pinned, headers=ADMIN)
        assert refused_by_b.status_code == 503
        assert refused_by_b.json()["error"]["code"] == "member_unavailable"
        assert int(refused_by_b.headers["retry-after"]) > 0
        assert upstream.hits(Fault.SERVER_ERROR) == calls_before  # b never called it

        good = client.post(b + "/v1/chat/completions", json=HI, headers=ADMIN)
        assert good.json()["choices"][0]["message"]["content"] == echo_answer("two workers")
        metrics = client.get(b + "/metrics", headers=ADMIN).text
        assert 'pinfactory_breaker_state{member="bad"} 2.0' in metrics
    asyncio.run(_clear(redis_url, namespace))


def test_least_busy_counts_the_requests_in_flight_in_every_process(
    pg_location: str, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    """Process a has a request in flight on deployment ``busy`` (the favourite: weight 2),
    so process b, counting in the same Redis, sends its request to ``idle``; counting only
    its own requests it would pick ``busy`` too."""
    with fault_upstream(FaultPlan(slow_s=2.0)) as upstream:
        team = tmp_path / "least-busy.yaml"
        team.write_text(
            f"name: {namespace}\n"
            "members:\n"
            f"  - {{name: busy, kind: openai_http, settings: {{base_url: "
            f"'{upstream.fault_url(Fault.SLOW)}', model: m}}}}\n"
            f"  - {{name: idle, kind: openai_http, settings: {{base_url: '{upstream.url}', "
            "model: m}}\n"
            "  - {name: gpt, kind: balanced, settings: {members: [busy, idle], "
            "strategy: least_busy, weights: {busy: 2}}}\n"
            "routing: {kind: rules, fallback: gpt}\n"
            f"state: {{redis_url: '{redis_url}'}}\n"
            f"ledger: {{dsn: '{pg_location}', durability: group}}\n"
            "observe: {access_log: false}\n"
        )
        with served(team, log=tmp_path / "gateways.log", count=2) as (a, b):
            replies: list[httpx.Response] = []

            def ask(url: str) -> None:
                replies.append(httpx.post(url + "/v1/chat/completions", json=HI, timeout=10))

            first = threading.Thread(target=ask, args=(a.url,))
            first.start()
            deadline = time.monotonic() + 10
            while upstream.hits(Fault.SLOW) == 0:  # a's request is on `busy`, in flight
                assert time.monotonic() < deadline, "a's request never reached `busy`"
                time.sleep(0.01)
            ask(b.url)
            assert upstream.hits(Fault.SLOW) == 1  # b sent its request to `idle`
            first.join(timeout=15)
        assert [r.status_code for r in replies] == [200, 200]
        assert all(
            r.json()["choices"][0]["message"]["content"] == echo_answer("two workers")
            for r in replies
        )
    asyncio.run(_clear(redis_url, namespace))
