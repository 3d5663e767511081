"""The ``pinfactory`` command."""

from __future__ import annotations

import typer

from pinfactory.cli import costs, runtime, team, verify

app = typer.Typer(
    name="pinfactory",
    help="Run a team of models behind one OpenAI-compatible endpoint.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runtime.register(app)
costs.register(app)
verify.register(app)
app.add_typer(team.app, name="team")


def main() -> None:
    app()
