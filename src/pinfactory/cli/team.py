"""``pinfactory team``: check team files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pinfactory.cli.common import console, team_from

app = typer.Typer(help="Team files.", no_args_is_help=True)


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="the team file to validate")]) -> None:
    """Validate a team file: every member, rule and key, with line numbers on errors."""
    team = team_from(file)
    console.print(f"[green]ok[/] {file}: team '{team.name}'")
    for spec in team.spec.members:
        state = (
            "off (needs " + ", ".join(spec.requires_env) + ")"
            if spec.name in team.disabled
            else "on"
        )
        console.print(f"  member [bold]{spec.name}[/] kind={spec.kind} tier={spec.tier} {state}")
    console.print(f"  routing: {team.spec.routing.kind}, fallback {team.spec.routing.fallback}")
    console.print(f"  ledger: {team.ledger_location}")
