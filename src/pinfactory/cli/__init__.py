"""The ``pinfactory`` command."""

from __future__ import annotations

import typer

from pinfactory.cli import (
    agents,
    audit,
    costs,
    feedback,
    lab,
    review,
    route,
    runtime,
    team,
    verify,
)

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
route.register(app)
app.add_typer(team.app, name="team")
app.add_typer(audit.app, name="audit")
app.add_typer(review.app, name="review")
app.add_typer(feedback.app, name="feedback")
lab.register(app)
agents.register(app)


def main() -> None:
    app()
