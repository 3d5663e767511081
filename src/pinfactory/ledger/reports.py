"""Spend reports as JSON or CSV, shared by ``pinfactory costs`` and ``/admin/costs``."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

from pinfactory.errors import RequestError
from pinfactory.ledger.base import SpendRow

GROUPINGS = ("unit", "user", "member", "tag")
FORMATS = ("json", "csv")
CSV_COLUMNS = ("key", "requests", "errors", "input_tokens", "output_tokens", "cost_usd")


def parse_since(text: str | None) -> float | None:
    """A date or ISO datetime (UTC unless it says otherwise) as epoch seconds."""
    if text is None or text == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RequestError(
            f"'since' must be a date like 2026-05-01 or an ISO datetime; got '{text}'",
            param="since",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def check_grouping(by: str) -> str:
    if by not in GROUPINGS:
        raise RequestError(f"'by' must be one of {', '.join(GROUPINGS)}; got '{by}'", param="by")
    return by


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise RequestError(f"'format' must be json or csv; got '{fmt}'", param="format")
    return fmt


def spend_json(rows: Sequence[SpendRow]) -> list[dict[str, Any]]:
    return [
        {
            "key": r.key,
            "requests": r.requests,
            "errors": r.errors,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cost_usd": format(r.cost_usd, "f"),
        }
        for r in rows
    ]


def spend_csv(rows: Sequence[SpendRow], by: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((by, *CSV_COLUMNS[1:]))
    for row in spend_json(rows):
        writer.writerow([row[c] for c in CSV_COLUMNS])
    return out.getvalue()
