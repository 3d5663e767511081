"""Pages render whatever an audit entry holds: old entries, missing fields, odd values."""

from __future__ import annotations

from decimal import Decimal

from pinfactory.console.queries import ChainStep, RequestRow
from pinfactory.console.session import Viewer
from pinfactory.console.web import build_templates, money
from pinfactory.ledger import LedgerEntry


def test_a_request_page_renders_calls_without_latency_or_with_odd_costs() -> None:
    row = RequestRow(
        7,
        LedgerEntry(
            "req_1", "sales", "", "auto", "calc", "rules", "r", 1, 1, Decimal("0.02"), 3.0, 200
        ),
    )
    steps = [
        ChainStep(1, "call", 0.0, {"member": "calc", "cost_usd": "0.01"}),  # no latency
        ChainStep(
            2,
            "call",
            0.0,
            {
                "member": "calc",
                "cost_usd": "n/a",
                "latency_ms": 4.2,
                "purpose": "retry",
                "error": "upstream_error",
            },
        ),
    ]
    viewer = Viewer("admin", "ops", "carol", "digest", "token")
    html = (
        build_templates()
        .get_template("request.html")
        .render(viewer=viewer, row=row, steps=steps, costs=steps, trace=None, review=None)
    )
    assert "$0.010000" in html and "n/a" in html and "4.2 ms" in html
    assert "upstream_error" in html and "retry" in html
    assert money(None) == "-" and money(Decimal("1.5"), 2) == "$1.50"
