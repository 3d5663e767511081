"""``pinfactory feedback export``: the ledger's labelled outcomes as a lab table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, get_args

import typer

from pinfactory.cli.common import TeamOption, clear_errors, console, team_from
from pinfactory.cli.ledger import with_ledger
from pinfactory.errors import RequestError
from pinfactory.feedback import OutcomeRow, Source, outcome_table, write_table
from pinfactory.ledger import Ledger

app = typer.Typer(help="Labelled outcomes: user feedback, verdicts, reviewers' decisions.")
SOURCES: tuple[Source, ...] = get_args(Source)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="where to write: .csv or .jsonl")],
    team: TeamOption = None,
    source: Annotated[
        list[str] | None,
        typer.Option(help="only these sources: user, verifier, reviewer (repeatable)"),
    ] = None,
) -> None:
    """Write every labelled outcome in the ledger, one row per label, joined with its
    request's member, cost, unit and the decision's propensity (the decision log
    `pinfactory router evaluate-offline --log` reads, once prompts are joined in)."""
    loaded = team_from(team)
    chosen = tuple(source or SOURCES)
    with clear_errors():
        bad = [s for s in chosen if s not in SOURCES]
        if bad:
            raise RequestError(
                f"--source {bad[0]!r} is not a source; allowed: {', '.join(SOURCES)}",
                param="source",
            )

    async def read(ledger: Ledger) -> list[OutcomeRow]:
        return await outcome_table(ledger, [s for s in SOURCES if s in chosen])

    rows = with_ledger(loaded, read)
    with clear_errors():
        write_table(rows, out)
    by = Counter(r.source for r in rows)
    summary = ", ".join(f"{by[s]} {s}" for s in SOURCES if by[s]) or "none"
    console.print(f"{len(rows)} labelled outcomes ({summary}) -> {out}")
