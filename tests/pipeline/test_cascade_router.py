"""A cascade router's tiers are one member made of members, end to end.

Through the real gateway and the official ``openai`` SDK, on SQLite and PostgreSQL: the
router's decision names the ``cascade`` member, the pipeline calls it like any other,
each tier it tries is booked (and sealed) on the request, and a budget reserves the worst
case over every tier it may call, so a budget that fits the first tier but not the
escalation is refused before any member runs instead of being overspent.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
from openai import OpenAI

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import open_ledger
from pinfactory.ledger.base import to_nano
from pinfactory.ledger.chain import payload, verify_ledger
from pinfactory.team import parse_team
from tests.pipeline.conftest import ledger_where, rows

QUIET, CALC = Decimal("0.0001"), Decimal("0.001")  # per call


def cascade_team(where: str, budget: Decimal) -> str:
    """Tier ``small`` answers nothing (it must escalate), then the calculator answers."""
    return f"""
name: tiers
members:
  - {{name: quiet, kind: 'tests.members.test_composite:SilentMember', tier: small,
      price: {{per_call: {QUIET}}}}}
  - {{name: calc, kind: calculator, tier: tool, price: {{per_call: {CALC}}}}}
routing: {{kind: cascade, fallback: calc, tiers: [quiet, tier:tool]}}
budgets:
  - {{unit: default, period: day, max_spend_usd: {budget}, on_exhausted: refuse}}
ledger: {{{where}}}
"""


def serve(location: str, budget: Decimal) -> Iterator[OpenAI]:
    team = parse_team(cascade_team(ledger_where(location), budget), "tiers.yaml", {})
    with serve_in_thread(create_app(team)) as url:
        yield OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def roomy(location: str) -> Iterator[OpenAI]:
    yield from serve(location, Decimal("1.00"))


@pytest.fixture
def tight(location: str) -> Iterator[OpenAI]:
    yield from serve(location, (QUIET + CALC) / 2)  # fits the first tier, not both


async def test_the_cascade_is_one_member_and_books_each_tier(roomy: OpenAI, location: str) -> None:
    reply = roomy.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "6 * 7"}]
    )
    assert "42" in (reply.choices[0].message.content or "")
    block = (reply.model_extra or {})["pinfactory"]
    assert block["member"] == "cascade" and block["router"] == "cascade"
    assert [(c["member"], c["purpose"]) for c in block["calls"]] == [
        ("quiet", "answer"),
        ("calc", "tier"),
    ]
    (row,) = rows(location)
    assert row["member"] == "cascade" and row["cost_nusd"] == to_nano(QUIET + CALC)
    ledger = open_ledger(location)
    await ledger.open()
    try:
        entries = await ledger.audit(block["request_id"])
        assert (await verify_ledger(ledger)).intact
    finally:
        await ledger.close()
    decision = next(payload(e) for e in entries if e.kind == "decision")
    assert decision["trail"] == [
        "quiet: escalated (answered 0.00 < 0.50)",
        "calc: accepted (last tier)",
    ]
    assert [payload(e)["member"] for e in entries if e.kind == "call"] == ["quiet", "calc"]


def test_a_budget_reserves_every_tier_the_cascade_may_call(tight: OpenAI, location: str) -> None:
    with pytest.raises(openai.RateLimitError) as refused:
        tight.chat.completions.create(model="auto", messages=[{"role": "user", "content": "6 * 7"}])
    assert "may cost up to $0.0011" in str(refused.value)
    (row,) = rows(location)
    assert row["status"] == 429 and row["cost_nusd"] == 0  # refused before any tier ran
