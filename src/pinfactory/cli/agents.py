"""``pinfactory agents``: run a team of agents from an agents file, with live progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pinfactory.agents import AgentRunner, LedgerRunStore, RunState, Step, load_agents
from pinfactory.cli.common import JsonOption, TeamOption, clear_errors, console, team_from
from pinfactory.cli.ledger import with_ledger, with_pipeline
from pinfactory.pipeline import Pipeline

app = typer.Typer(
    help="Teams of agents: every step one routed, costed, audited request.", no_args_is_help=True
)

AgentsFileArg = Annotated[Path, typer.Argument(help="agents file (YAML)", exists=True)]
RunIdArg = Annotated[str, typer.Argument(help="the run id (run_...)")]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="agents")


async def _drive(
    pipeline: Pipeline,
    limit: int | None,
    as_json: bool,
    *,
    resume_id: str = "",
    file: Path | None = None,
    task: str = "",
    seed: int = 0,
) -> RunState:
    """Run ``file`` on ``task`` (or resume ``resume_id``) with a live progress bar.

    Every turn is checkpointed in the team's ledger; Ctrl-C leaves the run resumable.
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("${task.fields[cost]:.6f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=as_json) as progress:
        bar = progress.add_task("steps", total=limit, cost=0.0)

        def on_step(state: RunState, step: Step) -> None:
            mark = "" if step.status == "ok" else f" [red]{step.status}[/]"
            said = step.text.replace("\n", " ")[:70] or (step.error or "")
            progress.console.print(
                f"[dim]{step.index:>3}[/] [cyan]{step.agent}[/]"
                f"{' -> ' + step.member if step.member else ''}{mark}: {said}",
                highlight=False,
                soft_wrap=True,
            )
            progress.update(bar, completed=len(state.steps), cost=float(state.cost_usd))

        runner = AgentRunner(pipeline, LedgerRunStore(pipeline.ledger), on_step)
        if file is None:
            return await runner.resume(resume_id)
        agents = load_agents(file, team=pipeline.team)
        return await runner.run(await runner.start(agents.spec, task, seed=seed))


def _report(state: RunState, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {**state.summary(), "posts": [p.model_dump() for p in state.posts]},
                indent=2,
                default=str,
            )
        )
        return
    table = Table(title=f"run {state.id}", show_header=False)
    for key in ("status", "reason", "answer", "review_id"):
        table.add_row(key, str(getattr(state, key)))
    table.add_row("steps", f"{len(state.steps)} ({state.tokens} tokens)")
    table.add_row("cost", f"${state.cost_usd:.6f} (sum of the steps' ledger rows)")
    table.add_row("switches", ", ".join(f"{k}={v}" for k, v in state.switches))
    for event in state.events:
        table.add_row(event.code, f"{event.name}: {event.detail} ({event.action})")
    console.print(table)
    if state.status in ("cancelled", "interrupted", "awaiting_review"):
        console.print(f"resume with: pinfactory agents resume {state.id}")


@app.command()
def run(
    file: AgentsFileArg,
    task: Annotated[str, typer.Option("--task", help="what the agents should do")],
    seed: Annotated[int | None, typer.Option(help="default: the file's seed")] = None,
    team: TeamOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the agents on TASK, each step a request through the team's pipeline."""
    with clear_errors():
        loaded = load_agents(file, team=team_from(team) if team else None)
    limit = loaded.spec.termination.max_steps
    chosen = loaded.spec.seed if seed is None else seed

    state = with_pipeline(
        loaded.team,
        lambda pipeline: _drive(pipeline, limit, as_json, file=file, task=task, seed=chosen),
    )
    _report(state, as_json)


@app.command()
def resume(run_id: RunIdArg, team: TeamOption = None, as_json: JsonOption = False) -> None:
    """Continue a cancelled or interrupted run (one started here or through the API, on
    the same ledger), or settle one a person decided in the review queue."""
    loaded = team_from(team)
    saved = with_ledger(loaded, lambda ledger: LedgerRunStore(ledger).load(run_id))
    limit = saved.spec.termination.max_steps
    state = with_pipeline(
        loaded, lambda pipeline: _drive(pipeline, limit, as_json, resume_id=run_id)
    )
    _report(state, as_json)


@app.command()
def show(run_id: RunIdArg, team: TeamOption = None, as_json: JsonOption = False) -> None:
    """A run's status, answer, cost and events from its checkpoint in the ledger."""
    state = with_ledger(team_from(team), lambda ledger: LedgerRunStore(ledger).load(run_id))
    _report(state, as_json)
