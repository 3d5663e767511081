"""Run a grid file end to end: plan the cells, compute the missing ones, write the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pinfactory.lab import report
from pinfactory.lab.grid import Cell, Progress, cells, execute, load_grid, read_cell


@dataclass(frozen=True)
class GridRun:
    report: Path
    results: Path
    computed: int


def plan(grid: Path, out: Path, *, quick: bool = False) -> tuple[list[Cell], list[Cell]]:
    """(all cells of the grid, the ones not yet in ``out``)."""
    spec = load_grid(grid)
    every = cells(spec, grid, quick=quick)
    return every, [c for c in every if read_cell(out, c) is None]


def run_grid(
    grid: Path,
    out: Path,
    *,
    workers: int = 1,
    quick: bool = False,
    ray_address: str | None = None,
    on_done: Progress | None = None,
) -> GridRun:
    spec = load_grid(grid)
    out.mkdir(parents=True, exist_ok=True)
    every, todo = plan(grid, out, quick=quick)
    execute(todo, out, workers=workers, ray_address=ray_address, on_done=on_done)
    done = []
    for cell in every:
        result = read_cell(out, cell)
        assert result is not None, f"cell {cell.key} was not written"
        done.append((cell, result))
    path = report.write(spec, done, out)
    return GridRun(path, out / "results.csv", len(todo))
