"""``pinfactory review``: the human review queue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pinfactory.cli.common import JsonOption, TeamOption, console, team_from
from pinfactory.cli.ledger import with_ledger, with_pipeline
from pinfactory.ledger import Review
from pinfactory.ledger.reviews import ReviewQueue, full

app = typer.Typer(help="The human review queue.", no_args_is_help=True)

ReviewId = Annotated[str, typer.Argument(help="the review id (rev_...)")]
Reviewer = Annotated[str, typer.Option("--reviewer", "-r", help="who decides")]
Note = Annotated[str | None, typer.Option(help="why")]


def _show(review: Review, as_json: bool) -> None:
    if as_json:
        print(json.dumps(full(review), indent=2))
        return
    for name, value in full(review).items():
        console.print(f"[dim]{name:>13}[/] {value}", highlight=False, soft_wrap=True)


@app.command("list")
def list_(
    team: TeamOption = None,
    status: Annotated[str, typer.Option(help="pending, approved, overridden or all")] = "pending",
    as_json: JsonOption = False,
) -> None:
    """Reviews waiting (or decided)."""
    loaded = team_from(team)
    if status not in ("pending", "approved", "overridden", "all"):
        raise typer.BadParameter(
            "must be pending, approved, overridden or all", param_hint="status"
        )
    wanted = None if status == "all" else status
    reviews = with_ledger(loaded, lambda ledger: ledger.reviews(wanted, None, 1000))
    if as_json:
        print(json.dumps([full(r) for r in reviews], indent=2))
        return
    table = Table(title=f"reviews ({status})")
    for column in ("id", "status", "unit", "member", "reason", "prompt"):
        table.add_column(column, overflow="fold")
    for r in reviews:
        table.add_row(r.id, r.status, r.unit, r.member, r.reason, r.prompt[:60])
    console.print(table)


@app.command()
def show(review_id: ReviewId, team: TeamOption = None, as_json: JsonOption = False) -> None:
    """One review with its evidence."""
    loaded = team_from(team)
    _show(with_ledger(loaded, lambda ledger: ReviewQueue(ledger).get(review_id)), as_json)


@app.command()
def approve(
    review_id: ReviewId,
    reviewer: Reviewer,
    team: TeamOption = None,
    note: Note = None,
    as_json: JsonOption = False,
) -> None:
    """Release the member's answer as it is; a request held by a quota runs first.

    A review that holds a request (a quota or budget's ``queue`` policy) opens
    the team's pipeline here and runs the request on its member, as the
    gateway's admin API would; the unit polling the review then gets the answer.
    """
    loaded = team_from(team)
    review = with_ledger(loaded, lambda ledger: ReviewQueue(ledger).get(review_id))
    if review.held is None:
        review = with_ledger(
            loaded, lambda ledger: ReviewQueue(ledger).approve(review_id, reviewer, note)
        )
    else:
        review = with_pipeline(
            loaded, lambda pipeline: pipeline.execute_approved(review_id, reviewer, note)
        )
    _show(review, as_json)


@app.command()
def override(
    review_id: ReviewId,
    reviewer: Reviewer,
    answer: Annotated[str, typer.Option("--answer", "-a", help="the replacement answer")],
    team: TeamOption = None,
    note: Note = None,
    as_json: JsonOption = False,
) -> None:
    """Replace the member's answer with yours."""
    loaded = team_from(team)
    review = with_ledger(
        loaded, lambda ledger: ReviewQueue(ledger).override(review_id, reviewer, answer, note)
    )
    _show(review, as_json)


@app.command()
def export(
    team: TeamOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="JSONL file (default stdout)")
    ] = None,
) -> None:
    """Decided reviews as labelled JSONL (prompt, member, answer, verdict, decision)."""
    loaded = team_from(team)
    if out is None:
        count = with_ledger(loaded, lambda ledger: ReviewQueue(ledger).export(sys.stdout))
    else:
        with out.open("w", encoding="utf-8") as handle:
            count = with_ledger(loaded, lambda ledger: ReviewQueue(ledger).export(handle))
        console.print(f"wrote {count} decided reviews to {out}", highlight=False)
