"""A budget holds against long outputs: the reservation is the worst case.

A member whose upstream writes as many tokens as it is allowed (1,000 by default) and
a $0.01/day budget: 8 and then 50 concurrent requests through the official ``openai``
SDK end at or under the limit, on SQLite and PostgreSQL. The member's configured
``max_output_tokens`` is what it sends upstream, so a call can cost no more than its
reservation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI

from pinfactory.errors import QuotaExceeded
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger.base import to_nano
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request
from pinfactory.spend import window_start
from pinfactory.team import parse_team
from tests.pipeline.conftest import ledger_where, rows

LIMIT = Decimal("0.01")
PER_ANSWER = Decimal(1000) * Decimal("2.5") / Decimal(1_000_000)  # 1,000 tokens at $2.5/M


def capped_team(upstream_url: str, where: str) -> str:
    return f"""
name: capped
members:
  - name: writer
    kind: openai_http
    price: {{output_per_mtok: 2.5}}
    max_output_tokens: 1000
    settings: {{base_url: "{upstream_url}/v1", model: words}}
routing: {{kind: rules, fallback: writer}}
budgets:
  - {{unit: default, period: day, max_spend_usd: {LIMIT}, on_exhausted: refuse}}
ledger: {{{where}}}
"""


@pytest.fixture
def gateway(upstream: tuple[str, object], location: str) -> Iterator[str]:
    team = parse_team(capped_team(upstream[0], ledger_where(location)), "capped.yaml", {})
    with serve_in_thread(create_app(team)) as url:
        yield url


async def burst(url: str, n: int) -> list[int]:
    client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)

    async def one() -> int:
        try:
            await client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "write at length"}]
            )
        except openai.RateLimitError:
            return 429
        return 200

    try:
        return list(await asyncio.gather(*(one() for _ in range(n))))
    finally:
        await client.close()


@pytest.mark.parametrize("concurrent", [8, 50])
def test_concurrent_long_outputs_end_within_the_budget(
    gateway: str, location: str, concurrent: int
) -> None:
    statuses = asyncio.run(burst(gateway, concurrent))
    booked = rows(location)
    spent = sum(r["cost_nusd"] for r in booked)
    assert spent <= to_nano(LIMIT)
    answered = statuses.count(200)
    assert answered == int(LIMIT / PER_ANSWER) == 4  # the worst case of each fits 4 times
    assert spent == answered * to_nano(PER_ANSWER)
    assert all(r["output_tokens"] == 1000 for r in booked if r["status"] == 200)
    assert statuses.count(429) == concurrent - answered


def limits_team(upstream_url: str, ledger: str) -> str:
    return f"""
name: limited
members:
  - {{name: calc, kind: calculator, price: {{per_call: 0.001}}}}
  - name: checker
    kind: openai_http
    price: {{per_call: 0.01}}
    settings: {{base_url: "{upstream_url}/v1", model: words, default_max_tokens: 3}}
routing: {{kind: rules, fallback: calc}}
verification: {{cross_check: checker, on_low_confidence: caveat}}
limits:
  - {{name: alice-daily, user: alice, period: day, max_calls: 4}}
  - {{name: checker-watch, member: checker, period: hour, max_calls: 100}}
ledger: {{path: '{ledger}'}}
"""


async def test_one_spec_limits_a_user_and_books_the_calls_verification_makes(
    upstream: tuple[str, object], tmp_path: Path
) -> None:
    team = parse_team(limits_team(upstream[0], str(tmp_path / "l.db")), "limited.yaml", {})
    async with open_pipeline(team) as pipeline:
        for user in ("alice", "alice", "bob"):
            answer = await pipeline.complete(Request.from_text("6 * 7", user=user))
            assert [c.member for c in answer.calls] == ["calc", "checker"]
        # calls are member calls: each cross-checked request makes two
        with pytest.raises(QuotaExceeded, match="limit 'alice-daily' \\(4 calls a day"):
            await pipeline.complete(Request.from_text("6 * 7", user="alice"))
        # alice's limit covers every member: both calls of each of her two requests
        alice = await pipeline.ledger.usage("quota:alice-daily:default", window_start("day"))
        watch = await pipeline.ledger.usage("quota:checker-watch:default", window_start("hour"))
    assert alice == (4, to_nano(2 * (Decimal("0.001") + Decimal("0.01"))))
    assert watch == (3, to_nano(3 * Decimal("0.01")))  # the cross-checks, booked though unrouted
