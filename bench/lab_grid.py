"""Wall time of the shipped lab grids (quick and full) on this machine.

    python bench/lab_grid.py [--workers 2] [--only quick|full]

Each run starts from an empty output folder (nothing reused) and writes
bench/results/lab_grid.json with the seconds and the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from pinfactory.lab.experiment import run_grid

ROOT = Path(__file__).resolve().parents[1]
GRIDS = sorted((ROOT / "lab" / "grids").glob("*.yaml"))


def headline(results: Path) -> dict[str, object]:
    rows = pd.read_csv(results)
    largest = max(
        rows["train_size"].astype(str), key=lambda s: float("inf") if s == "all" else float(s)
    )
    at = rows[rows["train_size"].astype(str) == largest]
    numeric = [
        c
        for c in (
            "accuracy",
            "quality",
            "cost_usd",
            "aiq",
            "cost_share_of_best_single",
            "apgr",
            "cpt50",
            "cpt80",
        )
        if c in at.columns
    ]
    return {
        "train_size": largest,
        "routers": at.groupby("router")[numeric].mean().round(4).to_dict("index"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=["quick", "full"])
    args = parser.parse_args()
    figures: dict[str, object] = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "runs": {},
    }
    for mode in ("quick", "full"):
        if args.only and mode != args.only:
            continue
        total = 0.0
        for grid in GRIDS:
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                result = run_grid(grid, Path(out), workers=args.workers, quick=mode == "quick")
                seconds = time.perf_counter() - started
                total += seconds
                figures["runs"][f"{grid.stem}:{mode}"] = {  # type: ignore[index]
                    "seconds": round(seconds, 1),
                    "cells": result.computed,
                    **headline(result.results),
                }
                print(f"{grid.stem:28s} {mode:5s} {result.computed:4d} cells {seconds:7.1f} s")
        figures["runs"][f"total:{mode}"] = round(total, 1)  # type: ignore[index]
        print(f"{'total':28s} {mode:5s} {total:7.1f} s")
    out = ROOT / "bench" / "results" / "lab_grid.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
