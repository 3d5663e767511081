"""What every command shares: the --team option and turning errors into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pinfactory.errors import PinfactoryError
from pinfactory.team import Team, load_team

console = Console()
err_console = Console(stderr=True)

TeamOption = Annotated[
    Path | None,
    typer.Option(
        "--team", "-t", help="team file (default: the packaged default team)", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


@contextmanager
def clear_errors() -> Iterator[None]:
    """Print a pinfactory error as one clear line and exit 1, never a traceback."""
    try:
        yield
    except PinfactoryError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def team_from(path: Path | None) -> Team:
    with clear_errors():
        return load_team(path)
