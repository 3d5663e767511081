"""The ``pinfactory`` command."""

from __future__ import annotations

import typer

from pinfactory.cli import costs, runtime, team
from pinfactory.cli import lab as lab_cli  # the routing lab: `lab run`, `simulate`

app = typer.Typer(
    name="pinfactory",
    help="Run a team of models behind one OpenAI-compatible endpoint.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runtime.register(app)
costs.register(app)
app.add_typer(team.app, name="team")
lab_cli.register(app)


def main() -> None:
    app()
