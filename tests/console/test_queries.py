"""The console's SQL on SQLite and PostgreSQL: paging, filters, buckets, percentiles, scoping."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pinfactory.console.queries import ConsoleQueries, LiveFilter, Totals
from pinfactory.console.spend import price_traffic, savings
from pinfactory.ledger import AuditEvent, LedgerEntry, Review, open_ledger
from pinfactory.members.base import Price
from pinfactory.team import parse_team

DAY = 86400.0
T0 = 1_700_006_400.0  # a fixed moment, on the hour (2023-11-15 00:00 UTC)


def entry(
    i: int,
    unit: str,
    member: str,
    *,
    status: int = 200,
    latency: float = 10.0,
    cost: str = "0.01",
    at: float = T0,
    reason: str = "rule 'math' matched",
) -> LedgerEntry:
    return LedgerEntry(
        f"req_{i:04d}",
        unit,
        "u",
        "auto",
        member,
        "rules",
        reason,
        10,
        5,
        Decimal(cost) if status < 400 else Decimal(0),
        latency,
        status,
        error="upstream_error: boom" if status >= 400 else None,
        time=at,
    )


async def filled(where: str) -> ConsoleQueries:
    ledger = open_ledger(where)
    await ledger.open()
    for i in range(1, 101):  # calc: latencies 1..100 ms, one an hour
        await ledger.record(
            entry(
                i, "sales" if i % 2 else "support", "calc", latency=float(i), at=T0 + (i % 3) * 3600
            ),
            [
                AuditEvent("decision", f"req_{i:04d}", {"confidence": 0.25}),
                AuditEvent("verdict", f"req_{i:04d}", {"label": "supported", "confidence": 0.9}),
            ],
        )
    tries = [AuditEvent("call", "req_0101", {"member": "docs", "error": "upstream_error"})] * 2
    await ledger.record(entry(101, "sales", "docs", status=502, at=T0 + 60), tries)
    await ledger.record(
        entry(
            102,
            "sales",
            "docs",
            cost="0.05",
            at=T0 + 120,
            reason="no rule matched; fallback 'docs' (no route claimed it)",
        )
    )
    for n, status in ((1, "pending"), (2, "approved")):
        review = Review(
            f"rev_{n}", f"req_{n:04d}", "sales", "u", T0 + n, "doubt", None, "q", "calc", "84"
        )
        await ledger.add_review(review)
        if status == "approved":
            await ledger.decide_review(
                review.id,
                "approved",
                "rita",
                None,
                None,
                [AuditEvent("review.approved", review.request_id)],
            )
    return ConsoleQueries(ledger)


async def test_live_pages_newest_first_with_filters_and_annotations(location: str) -> None:
    queries = await filled(location)
    try:
        page = await queries.requests(LiveFilter(), limit=10)
        assert [r.entry.request_id for r in page.rows][:3] == ["req_0102", "req_0101", "req_0100"]
        assert page.older == page.rows[-1].seq
        older = await queries.requests(LiveFilter(), before=page.older, limit=10)
        assert older.rows[0].seq == page.older - 1
        row = page.rows[2]
        assert (row.verdict, row.confidence, row.calls) == ("supported", 0.9, 0)
        failed = await queries.requests(LiveFilter(status="error"))
        assert [r.entry.request_id for r in failed.rows] == ["req_0101"]
        assert failed.rows[0].calls == 2  # a retry: both calls are in its chain
        assert failed.older is None
        docs = await queries.requests(LiveFilter(unit="sales", member="docs"))
        assert {r.entry.request_id for r in docs.rows} == {"req_0101", "req_0102"}
        newer = await queries.requests(LiveFilter(), after=(await queries.latest_seq()) - 2)
        assert [r.entry.request_id for r in newer.rows] == ["req_0102", "req_0101"]
        assert await queries.request("req_0002", unit="sales") is None  # support's
        assert (await queries.request("req_0002", unit="support")) is not None
        assert await queries.request("req_nope") is None
        kinds = [s.kind for s in await queries.chain("req_0002")]
        assert kinds == ["decision", "verdict", "row", "review.approved"]  # row: sealed figures
    finally:
        await queries.ledger.close()


async def test_aggregates_bucket_rank_and_count_in_sql(location: str) -> None:
    queries = await filled(location)
    try:
        cube = await queries.spend_cube(T0 - 3600, 3600, None, until=T0 + 3 * 3600)
        over = cube.over_time("member")
        assert over.starts == [T0 - T0 % 3600 + h * 3600 for h in range(-1, 4)]
        assert over.series["calc"][0] == 0.0  # the empty hour before the first request
        assert sum(over.series["calc"]) == pytest.approx(1.0)
        assert sum(over.series["docs"]) == pytest.approx(0.05)
        tiers = cube.over_time({"calc": "tool"})
        assert sum(tiers.series["tool"]) == pytest.approx(1.0)
        assert sum(tiers.series["-"]) == pytest.approx(0.05)  # docs: not in the mapping
        sales = await queries.spend_cube(T0, 3600, "sales", until=T0)
        assert list(sales.over_time("unit").series) == ["sales"]
        totals = {t.key: t for t in cube.totals("member")}
        assert totals["calc"].requests == 100 and totals["docs"].errors == 1
        assert totals["calc"].cost_usd == Decimal("1")
        assert totals == {t.key: t for t in await queries.totals("member", T0 - DAY, None)}
        assert [t.key for t in cube.totals("unit")] == ["sales", "support"]
        health = {h.member: h for h in await queries.health(T0 - DAY)}
        assert (health["calc"].p50_ms, health["calc"].p95_ms) == (50.0, 95.0)
        assert health["docs"].error_rate == 0.5
        assert health["docs"].last_error == "upstream_error: boom"
        routes = await queries.route_cube(T0, DAY, until=T0)
        assert routes.fallbacks == 1 and routes.downgrades == 0
        top = routes.routes()
        assert [(r.reason, r.requests) for r in top] == [
            ("rule 'math' matched", 100),
            ("no rule matched; fallback 'docs'", 1),  # its detail in parentheses cut
        ]
        assert routes.over_time().series["rules"] == [101.0]
        pending = await queries.reviews(False, None)
        decided = await queries.reviews(True, "sales")
        assert [r.id for r in pending] == ["rev_1"] and [r.id for r in decided] == ["rev_2"]
        assert decided[0].reviewer == "rita"
        assert await queries.reviews(True, "support") == []
        assert await queries.pending_reviews("sales") == 1
        head = await queries.head_record()
        assert head is not None and json.loads(head.body)["kind"] == "review.approved"
    finally:
        await queries.ledger.close()


def test_savings_price_the_answered_traffic_on_one_member() -> None:
    team = parse_team(
        """
members:
  - {name: cheap, kind: calculator, price: {per_call: 0.01}}
  - {name: dear, kind: calculator, price: {input_per_mtok: 1000, per_call: 0.1}}
routing: {kind: rules, fallback: cheap}
""",
        "team.yaml",
        {},
    )
    traffic = [Totals("cheap", 10, 0, 1000, 500, 100_000_000)]  # 10 calls, $0.10
    assert price_traffic(traffic, Price(per_call=Decimal("0.1"))) == Decimal("1.0")
    found = savings(team, traffic, "cheap")
    assert found.actual_usd == Decimal("0.1")
    assert found.priciest is not None and found.priciest.member == "dear"
    assert found.priciest.cost_usd == Decimal("2.0")  # 10 x 0.1 + 1000 tokens x $1000/M
    assert found.priciest.saved_usd == Decimal("1.9")
    assert found.picked is not None and found.picked.saved_usd == Decimal("0")
