"""``pinfactory audit``: verify the chain, explain one request."""

from __future__ import annotations

from typing import Annotated

import typer

from pinfactory.cli.common import TeamOption, console, err_console, team_from
from pinfactory.cli.ledger import with_ledger
from pinfactory.ledger.chain import verify_ledger
from pinfactory.ledger.responsibility import explain as explain_records

app = typer.Typer(help="The tamper-evident audit chain.", no_args_is_help=True)


@app.command()
def verify(team: TeamOption = None) -> None:
    """Walk the whole chain, then check every ledger row against its sealed entry;
    exit 1 naming the first broken entry or edited row."""
    loaded = team_from(team)
    report = with_ledger(loaded, verify_ledger)
    if report.intact:
        console.print(f"audit chain intact: {report.checked} entries checked", highlight=False)
        return
    if report.broken_row is not None:
        message = (
            f"[bold red]ledger row {report.broken_row} disagrees with its sealed audit entry "
            f"{report.broken_seq}:[/] {report.problem} (the chain's {report.checked} entries "
            "are intact)"
        )
    else:
        message = (
            f"[bold red]audit chain broken at entry {report.broken_seq}:[/] {report.problem} "
            f"({report.checked} entries before it are intact)"
        )
    err_console.print(message, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def explain(
    request_id: Annotated[str, typer.Argument(help="the request id (x-request-id)")],
    team: TeamOption = None,
) -> None:
    """Print one request's chain: which component's output was final, which failed."""
    loaded = team_from(team)
    records = with_ledger(loaded, lambda ledger: ledger.audit(request_id))
    if not records:
        err_console.print(f"[bold red]error:[/] no audit entries for request '{request_id}'")
        raise typer.Exit(1)
    story = explain_records(request_id, records)
    console.print(f"[bold]request {request_id}[/]", highlight=False)
    for record, data in story.steps:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(data.items()) if v not in (None, "", []))
        console.print(f"  #{record.seq} [cyan]{record.kind}[/] {detail}", highlight=False)
    console.print(f"final: {story.final or 'no answer was released'}", highlight=False)
    if story.failures:
        console.print("failed:", highlight=False)
        for note in story.failures:
            console.print(f"  - {note}", highlight=False)
    else:
        console.print("failed: none", highlight=False)
