"""The ledger row, the sealed chain, metrics, the trace and the response block are
projections of one typed outcome: they agree, and the cost is the sum of every call.

A calculator answers; a cross-check member priced $0.01 a call (plus its tokens)
disagrees with it. Through the real gateway and the official ``openai`` SDK, on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from openai import OpenAI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from pinfactory.cli import app as cli
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import open_ledger
from pinfactory.ledger.base import to_nano
from pinfactory.ledger.chain import payload, verify_ledger
from pinfactory.observe import Observers
from pinfactory.observe import attributes as a
from pinfactory.observe.config import TracingSpec
from pinfactory.observe.metrics import Metrics
from pinfactory.observe.tracing import Tracing
from pinfactory.team import parse_team
from tests.pipeline.conftest import ledger_where, rows

CALC = Decimal("0.001")
CHECK = Decimal("0.01") + Decimal(5) * Decimal(1000) / Decimal(1_000_000)  # per call + 5 tokens


def cross_checked(upstream_url: str, where: str) -> str:
    return f"""
name: checked
members:
  - {{name: calc, kind: calculator, price: {{per_call: {CALC}}}}}
  - name: checker
    kind: openai_http
    price: {{per_call: 0.01, output_per_mtok: 1000}}
    settings: {{base_url: "{upstream_url}/v1", model: words, default_max_tokens: 5}}
routing: {{kind: rules, fallback: calc}}
verification: {{cross_check: checker, on_low_confidence: caveat}}
ledger: {{{where}}}
"""


def metric_sum(metrics: Metrics, name: str) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    )


@pytest.fixture
def observed(
    upstream: tuple[str, object], location: str
) -> Iterator[tuple[OpenAI, Metrics, InMemorySpanExporter]]:
    team = parse_team(cross_checked(upstream[0], ledger_where(location)), "c.yaml", {})
    exporter = InMemorySpanExporter()
    metrics = Metrics()
    observers = Observers([metrics, Tracing(TracingSpec(), exporter=exporter)])
    with serve_in_thread(create_app(team, observers=observers)) as url:
        yield OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0), metrics, exporter


async def test_every_record_of_a_request_agrees_and_books_every_call(
    observed: tuple[OpenAI, Metrics, InMemorySpanExporter], location: str
) -> None:
    client, metrics, exporter = observed
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "6 * 7"}]
    )
    block = (reply.model_extra or {})["pinfactory"]
    total = CALC + CHECK

    # the response block: the cost of both calls, each listed
    assert Decimal(str(block["cost_usd"])) == total
    assert [(c["member"], c["purpose"]) for c in block["calls"]] == [
        ("calc", "answer"),
        ("checker", "cross_check"),
    ]
    assert sum(Decimal(c["cost_usd"]) for c in block["calls"]) == total
    assert block["events"][0]["event"] == "disagreement"

    # the ledger row
    (row,) = rows(location)
    assert row["cost_nusd"] == to_nano(total)
    assert (row["input_tokens"], row["output_tokens"]) == (
        block["input_tokens"],
        block["output_tokens"],
    )

    # the chain: the same figures sealed, one call entry per call, and it verifies
    ledger = open_ledger(location)
    await ledger.open()
    try:
        entries = await ledger.audit(block["request_id"])
        assert (await verify_ledger(ledger)).intact
    finally:
        await ledger.close()
    kinds = [e.kind for e in entries]
    assert kinds.count("call") == 2 and "disagreement" in kinds
    assert kinds[-1] == "response"  # the closing entry seals the row's figures
    sealed = payload(entries[-1])["row"]
    assert sealed["cost_nusd"] == row["cost_nusd"]
    assert sealed["output_tokens"] == row["output_tokens"]

    # metrics: cost and tokens under each member called, and the disagreement counted
    assert metric_sum(metrics, "pinfactory_cost_usd_total") == pytest.approx(float(total))
    assert metric_sum(metrics, "pinfactory_tokens_total") == pytest.approx(
        row["input_tokens"] + row["output_tokens"]
    )
    assert metric_sum(metrics, "pinfactory_disagreements_total") == 1

    # the trace: the request span carries the total, the verdict's confidence and the event
    root = next(s for s in exporter.get_finished_spans() if s.name == "chat auto")
    attrs = dict(root.attributes or {})
    assert attrs[a.COST_USD] == pytest.approx(float(total))
    assert attrs[a.CALLS] == 2
    assert attrs[a.VERDICT_CONFIDENCE] == pytest.approx(block["verification_confidence"])
    assert a.DISAGREEMENT_EVENT in [e.name for e in root.events]
    # the trace id: sealed in the chain's response entry, the span's, the block's
    assert root.context is not None
    assert payload(entries[-1])["trace_id"] == format(root.context.trace_id, "032x")
    assert block["trace_id"] == format(root.context.trace_id, "032x")


def test_the_costs_report_counts_the_cross_check(
    observed: tuple[OpenAI, Metrics, InMemorySpanExporter],
    location: str,
    tmp_path: Path,
    upstream: tuple[str, object],
) -> None:
    client, _, _ = observed
    for text in ("1 + 2", "3 * 4"):
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": text}])
    team = tmp_path / "team.yaml"
    team.write_text(cross_checked(upstream[0], ledger_where(location)))
    report = CliRunner().invoke(cli, ["costs", "--team", str(team), "--by", "unit", "--json"])
    assert report.exit_code == 0, report.output
    (unit,) = json.loads(report.stdout)["unit"]
    assert Decimal(str(unit["cost_usd"])) == 2 * (CALC + CHECK)
