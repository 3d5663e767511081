"""Quotas end to end: the openai SDK over loopback, counted in the SQLite ledger."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import parse_team
from tests.conftest import ledger_rows

TEAM = """\
name: quotas
members:
  - {name: calculator, kind: calculator, tier: tool, price: {per_call: 0.01}}
  - {name: orders, kind: orders, tier: tool, price: {per_call: 0.02}}
routing:
  kind: rules
  fallback: calculator
  rules:
    - {name: orders, when: {keywords: [order]}, route: orders}
  quotas:
    - {name: sales-orders, member: orders, unit: sales, period: day, max_calls: 1,
       on_exhausted: refuse}
    - {name: support-orders, member: orders, unit: support, period: day, max_calls: 1,
       on_exhausted: downgrade, downgrade_to: calculator}
keys:
  - {key: sk-sales-0001, unit: sales}
  - {key: sk-support-0002, unit: support}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path_factory.mktemp("quotas") / "ledger.db"
    team = parse_team(TEAM, "quotas.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        yield url, ledger


def ask(url: str, key: str, text: str) -> dict[str, Any]:
    with OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": text}]
        )
    block: dict[str, Any] = dict((reply.model_extra or {})["pinfactory"])
    block["text"] = reply.choices[0].message.content or ""
    return block


def usage(ledger: Path, key: str) -> int:
    db = sqlite3.connect(ledger)
    try:
        row = db.execute("SELECT SUM(calls) FROM quota_usage WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return int(row[0] or 0)


def test_exhausted_refuse_quota_answers_429_naming_it(gateway: tuple[str, Path]) -> None:
    url, ledger = gateway
    first = ask(url, "sk-sales-0001", "where is order 1042")
    assert first["member"] == "orders" and "shipped" in first["text"]
    with pytest.raises(openai.RateLimitError, match="sales-orders") as caught:
        ask(url, "sk-sales-0001", "where is order 1042")
    assert caught.value.status_code == 429
    assert usage(ledger, "quota:sales-orders:sales") == 1  # the refused call consumed nothing
    refused = ledger_rows(ledger, "status = 429")
    assert refused and "sales-orders" in refused[-1]["error"]
    # another unit's quota is its own
    assert ask(url, "sk-support-0002", "order 7 please")["member"] == "orders"


def test_exhausted_downgrade_quota_routes_to_the_cheaper_member(
    gateway: tuple[str, Path],
) -> None:
    url, ledger = gateway
    ask(url, "sk-support-0002", "where is order 1042")  # uses up support's one call, if left
    downgraded = ask(url, "sk-support-0002", "where is order 1042")
    assert downgraded["member"] == "calculator"
    assert "quota 'support-orders'" in downgraded["reason"]
    assert "downgraded to 'calculator'" in downgraded["reason"]
    assert usage(ledger, "quota:support-orders:support") == 1
    rows = ledger_rows(ledger, "unit = 'support' AND status = 200")
    assert rows[-1]["member"] == "calculator"
