"""``pinfactory lab run`` (experiment grids) and ``pinfactory simulate`` (cost of a policy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pinfactory.cli.common import JsonOption, clear_errors, console

lab_app = typer.Typer(help="Replay benchmark data: routing experiment grids.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
    app.command()(simulate)


@lab_app.command("run")
def run(
    grid: Annotated[Path, typer.Argument(help="grid YAML, e.g. lab/grids/routerbench.yaml")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder (resumable)")],
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="processes")] = 1,
    quick: Annotated[bool, typer.Option("--quick", help="the grid's small CI variant")] = False,
    ray: Annotated[
        str | None, typer.Option("--ray", help="run cells as Ray tasks on this cluster address")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run routers x datasets x training sizes x seeds; write results.csv and report.md.

    ``--json`` prints one JSON object (cells, already done, ran, output files) and no
    progress: for scripts, whatever the terminal's width.
    """
    # the lab (pandas, scikit-learn: about 1.1 s to import) loads only for lab commands
    from pinfactory.lab.experiment import plan, run_grid

    with clear_errors():
        every, todo = plan(grid, out, quick=quick)
        if as_json:
            done = run_grid(grid, out, workers=workers, quick=quick, ray_address=ray)
            summary = {
                "grid": str(grid),
                "cells": len(every),
                "already": len(every) - len(todo),
                "ran": len(todo),
                "results": str(done.results),
                "report": str(done.report),
            }
            print(json.dumps(summary))
            return
        console.print(f"{grid}: {len(every)} cells, {len(every) - len(todo)} already in {out}")
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("cells", total=len(todo))
            result = run_grid(
                grid,
                out,
                workers=workers,
                quick=quick,
                ray_address=ray,
                on_done=lambda cell: progress.update(
                    task, advance=1, description=f"{cell.router.name} {cell.train_size}"
                ),
            )
    console.print(f"wrote {result.results} and {result.report}")


def simulate(
    log: Annotated[Path, typer.Option("--log", help="request log: CSV or the gateway's SQLite")],
    policy: Annotated[Path, typer.Option("--policy", help="team YAML with prices and routing")],
    as_json: JsonOption = False,
) -> None:
    """Price a request log as it ran and under a tiered routing policy."""
    # the simulator (about 80 ms to import) loads only for 'lab simulate'
    from pinfactory.lab.simulate import simulate as run_simulation

    with clear_errors():
        report = run_simulation(log, policy)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return
    console.print(
        f"{report.requests} requests from {log}: as run ${report.cost_as_run:.4f}, "
        f"under {policy.name} ${report.cost_policy:.4f} "
        f"({report.saving:+.1%} saved)"
    )
    table = Table(title="share of requests per member under the policy")
    for column in ("member", "tier", "requests", "share", "cost (USD)"):
        table.add_column(column, justify="left" if column in ("member", "tier") else "right")
    for row in report.members:
        table.add_row(
            row.member, row.tier, str(row.requests), f"{row.share:.1%}", f"{row.cost_usd:.6f}"
        )
    console.print(table)
    if report.quality_as_run is not None and report.quality_policy is not None:
        console.print(
            f"expected quality (labelled requests): as run {report.quality_as_run:.3f}, "
            f"under the policy {report.quality_policy:.3f} "
            f"({report.quality_policy - report.quality_as_run:+.3f})"
        )
