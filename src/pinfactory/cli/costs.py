"""``pinfactory costs``: spend from the ledger, by unit, user, member or tag."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from pinfactory.cli.common import JsonOption, TeamOption, clear_errors, console, team_from
from pinfactory.cli.ledger import with_ledger
from pinfactory.ledger import Ledger, SpendRow
from pinfactory.ledger.reports import check_grouping, parse_since, spend_csv, spend_json


def register(app: typer.Typer) -> None:
    app.command()(costs)


def costs(
    team: TeamOption = None,
    by: Annotated[
        str | None, typer.Option(help="unit, user, member or tag (default: unit and member)")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="only requests from this date on (2026-05-01, UTC)")
    ] = None,
    unit: Annotated[str | None, typer.Option(help="only this unit's requests")] = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="print CSV (needs --by)")] = False,
) -> None:
    """Spend, requests and errors by business unit, user, member or tag."""
    loaded = team_from(team)
    with clear_errors():
        groups = [check_grouping(by)] if by else ["unit", "member"]
        start = parse_since(since)

    async def spend(ledger: Ledger) -> dict[str, list[SpendRow]]:
        return {group: await ledger.spend(group, start, unit) for group in groups}

    result = with_ledger(loaded, spend)
    if as_csv:
        for group, rows in result.items():
            print(spend_csv(rows, group), end="")
        return
    if as_json:
        print(json.dumps({group: spend_json(rows) for group, rows in result.items()}, indent=2))
        return
    for group, rows in result.items():
        table = Table(title=f"spend by {group} ({loaded.ledger_location})")
        for column in (group, "requests", "errors", "tokens in", "tokens out", "cost (USD)"):
            table.add_column(column, justify="left" if column == group else "right")
        for r in rows:
            table.add_row(
                r.key,
                str(r.requests),
                str(r.errors),
                str(r.input_tokens),
                str(r.output_tokens),
                f"{r.cost_usd:.8f}",
            )
        console.print(table)
