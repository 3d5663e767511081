"""``pinfactory costs``: spend from the ledger."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.table import Table

from pinfactory.cli.common import JsonOption, TeamOption, clear_errors, console, team_from
from pinfactory.ledger import SpendRow, open_ledger


def register(app: typer.Typer) -> None:
    app.command()(costs)


async def _spend(location: str, groups: list[str]) -> dict[str, list[SpendRow]]:
    ledger = open_ledger(location)
    await ledger.open()
    try:
        return {by: await ledger.spend(by) for by in groups}
    finally:
        await ledger.close()


def costs(
    team: TeamOption = None,
    by: Annotated[
        str | None, typer.Option(help="unit, user, member or tag (default: unit and member)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Spend, requests and errors by business unit and by member."""
    loaded = team_from(team)
    groups = [by] if by else ["unit", "member"]
    with clear_errors():
        spend = asyncio.run(_spend(loaded.ledger_location, groups))
    if as_json:
        print(
            json.dumps(
                {
                    group: [
                        {
                            "key": r.key,
                            "requests": r.requests,
                            "errors": r.errors,
                            "input_tokens": r.input_tokens,
                            "output_tokens": r.output_tokens,
                            "cost_usd": str(r.cost_usd),
                        }
                        for r in rows
                    ]
                    for group, rows in spend.items()
                },
                indent=2,
            )
        )
        return
    for group, rows in spend.items():
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
