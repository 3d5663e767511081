"""The experiment grid: routers x datasets x training-set sizes x seeds.

A grid file (YAML) names datasets (a loader and its options), routers (see
:mod:`pinfactory.lab.routers`), ``train_sizes`` (ints, or ``all``; per member
when ``per_member`` is true, i.e. per class of the oracle's choice) and
``seeds``. ``quick:`` lists a smaller set of routers, sizes and seeds for CI;
the evaluation split is never cut. The baselines ``oracle``, ``best_single``
and ``random`` are always rows.

Each cell is computed once and written to ``OUT/cells/<key>.json``; a rerun
skips the cells already there, so an interrupted grid resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pinfactory.embeddings import CachedEncoder, get_encoder
from pinfactory.errors import DatasetError, PinfactoryError, RoutingError
from pinfactory.lab import metrics
from pinfactory.lab.cluster import run_on_ray
from pinfactory.lab.datasets import Splits, default_root, load
from pinfactory.lab.router_kinds import build
from pinfactory.lab.routers import BASELINES, LabRouter, PythonRouter, RouterSpec, rank_members
from pinfactory.routing.rules_file import load_rules_file
from pinfactory.routing.table import RoutingTable

TrainSize = int | Literal["all"]


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    loader: str
    options: dict[str, Any] = {}


class QuickSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routers: list[str] = []
    train_sizes: list[TrainSize] = ["all"]
    seeds: list[int] = [0]


class GridSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    data_root: str | None = Field(default=None, description="relative to the grid file")
    datasets: list[DatasetSpec] = Field(min_length=1)
    routers: list[RouterSpec] = Field(min_length=1)
    train_sizes: list[TrainSize] = ["all"]
    per_member: bool = False
    seeds: list[int] = [0]
    quick: QuickSpec | None = None


@dataclass(frozen=True)
class Cell:
    """One unit of work; picklable, so it can run in another process or on Ray."""

    dataset: DatasetSpec
    router: RouterSpec
    train_size: TrainSize
    seed: int
    per_member: bool
    root: str
    base: str

    @property
    def key(self) -> str:
        blob = json.dumps(
            [
                self.dataset.model_dump(),
                self.router.model_dump(exclude={"datasets"}),  # which cells, not what they hold
                self.train_size,
                self.seed,
                self.per_member,
            ],
            sort_keys=True,
        )
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.dataset.name}__{self.router.name}")
        return f"{slug}__{self.train_size}__s{self.seed}__{digest}"


def load_grid(path: Path) -> GridSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"grid file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"grid file {path}: not YAML ({exc})") from None
    try:
        return GridSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise DatasetError(f"grid file {path}: {problems}") from None


def cells(spec: GridSpec, grid_path: Path, quick: bool = False) -> list[Cell]:
    base = grid_path.resolve().parent
    if os.environ.get("PINFACTORY_DATA"):
        root = Path(os.environ["PINFACTORY_DATA"])
    elif spec.data_root is not None:
        root = (base / spec.data_root).resolve()
    else:
        root = default_root()
    datasets = [_resolve_dataset(d, base, root) for d in spec.datasets]
    routers = [*BASELINES, *(r for r in spec.routers if r.name not in {b.name for b in BASELINES})]
    names = [d.name for d in datasets]
    for router in routers:
        if router.rules is not None:  # a broken rules file fails here, before any cell runs
            load_rules_file((base / router.rules).resolve())
        missing = sorted(set(router.datasets or ()) - set(names))
        if missing:
            raise DatasetError(
                f"grid {spec.name}: router '{router.name}' names datasets {missing}; "
                f"the grid's datasets: {', '.join(names)}"
            )
    sizes, seeds = spec.train_sizes, spec.seeds
    if quick and spec.quick is not None:
        keep = set(spec.quick.routers) | {b.name for b in BASELINES}
        unknown = keep - {r.name for r in routers}
        if unknown:
            raise DatasetError(f"grid {spec.name}: quick lists unknown routers {sorted(unknown)}")
        routers = [r for r in routers if r.name in keep]
        sizes, seeds = spec.quick.train_sizes, spec.quick.seeds
    pairs = [
        (d, r) for d in datasets for r in routers if r.datasets is None or d.name in r.datasets
    ]
    for dataset, router in pairs:
        if router.rules is not None:
            _check_routes(router, dataset, base, root)
    return [
        Cell(d, r, size, seed, spec.per_member, str(root), str(base))
        for d, r in pairs
        for size in sizes
        for seed in seeds
    ]


def _check_routes(router: RouterSpec, dataset: DatasetSpec, base: Path, root: Path) -> None:
    """A rules row's routes must be members of each dataset it runs on: checked when the grid
    is planned, so a mismatch fails before any cell runs (not after every other cell)."""
    path = (base / str(router.rules)).resolve()
    config = load_rules_file(path)
    options = json.dumps(dataset.options, sort_keys=True)
    members = _splits(dataset.loader, str(root), options).train.members
    unknown = sorted(({r.route for r in config.rules} | {config.fallback}) - set(members))
    if unknown:
        raise RoutingError(
            f"router '{router.name}': rules file {path} routes to {', '.join(unknown)}, which "
            f"are not members of dataset '{dataset.name}' ({', '.join(members)}); give the row "
            f"`datasets: [...]` to run it only on the datasets whose members it names"
        )


def _resolve_dataset(dataset: DatasetSpec, base: Path, root: Path) -> DatasetSpec:
    """A ``log`` dataset's ``path`` made absolute: relative to the grid file, as ``rules:``
    is (the data root is tried second, for grids written before); missing -> one clear error."""
    path = dataset.options.get("path")
    if dataset.loader != "log" or not isinstance(path, str) or Path(path).is_absolute():
        return dataset
    tried = [(base / path).resolve(), (root / path).resolve()]
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        raise DatasetError(
            f"dataset '{dataset.name}': log {path!r} not found; looked beside the grid file "
            f"({tried[0]}) and in the data root ({tried[1]})"
        )
    return dataset.model_copy(update={"options": {**dataset.options, "path": str(found)}})


@lru_cache(maxsize=8)
def _splits(loader: str, root: str, options: str) -> Splits:
    return load(loader, Path(root), **json.loads(options))


def splits_for(cell: Cell) -> Splits:
    options = json.dumps(cell.dataset.options, sort_keys=True)
    return _splits(cell.dataset.loader, cell.root, options)


def sample_train(train: RoutingTable, size: TrainSize, seed: int, per_member: bool) -> RoutingTable:
    """``size`` training prompts (per oracle member when ``per_member``), drawn by ``seed``."""
    if size == "all":
        return train
    rng = np.random.default_rng(seed)
    if not per_member:
        rows = rng.choice(len(train), size=min(size, len(train)), replace=False)
        return train.subset(np.sort(rows))
    groups = train.oracle()
    picked = []
    for member in np.unique(groups):
        members_rows = np.flatnonzero(groups == member)
        picked.append(rng.choice(members_rows, size=min(size, len(members_rows)), replace=False))
    return train.subset(np.sort(np.concatenate(picked)))


def two_members(table: RoutingTable, train: RoutingTable) -> tuple[int, int] | None:
    """(weak, strong) member indices for a two-member table, else None."""
    if len(table.members) != 2:
        return None
    if "strong" in table.meta and table.meta["strong"] in table.members:
        strong = table.members.index(table.meta["strong"])
    else:
        strong = int(np.argmax(train.quality.mean(axis=0)))
    return 1 - strong, strong


def prime_vectors(encoder: str, full: RoutingTable, sample: RoutingTable) -> None:
    """Put a training sample's embeddings in the on-disk cache, sliced from the whole
    split's (encoded once), so a learned router's ``embed(..., cache=True)`` finds them
    instead of encoding every sample of every seed again."""
    cached = CachedEncoder(get_encoder(encoder))
    if cached.path(sample.prompts).exists():
        return
    position = {p: i for i, p in enumerate(full.prompts)}
    vectors = cached.encode(full.prompts)[[position[p] for p in sample.prompts]]
    cached.store(sample.prompts, vectors)


class SweepPoint(TypedDict):
    knob: float | None
    accuracy: float
    quality: float
    cost_usd: float
    shares: tuple[float, ...]


def run_cell(cell: Cell) -> dict[str, Any]:
    """Fit the cell's router on its training sample and replay it over the test split."""
    splits = splits_for(cell)
    train = sample_train(splits.train, cell.train_size, cell.seed, cell.per_member)
    test = splits.test
    lab_router = build(cell.router, cell.seed, Path(cell.base))
    encoder = lab_router.encoder if isinstance(lab_router, PythonRouter) else None
    if cell.train_size != "all" and encoder is not None:
        prime_vectors(encoder, splits.train, train)
    started = time.perf_counter()
    # best_single is the whole split's best member at every size (docs/lab.md)
    fit_on = splits.train if cell.router.resolved_kind == "best_single" else train
    router = lab_router.fit(fit_on)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    sweep, default_choices = _sweep(router, test)
    predict_s = time.perf_counter() - started
    single_cost = test.cost.mean(axis=0)
    single_quality = test.quality.mean(axis=0)
    costs = [p["cost_usd"] for p in sweep]
    qualities = [p["quality"] for p in sweep]
    best, _ = rank_members(splits.train, cell.seed)
    reach = metrics.cost_to_reach(costs, qualities, float(single_quality[best]))
    priced = metrics.costs_differ(single_cost)
    row: dict[str, Any] = {
        "dataset": cell.dataset.name,
        "router": cell.router.name,
        "family": cell.router.resolved_family,
        "train_size": str(cell.train_size),
        "train_rows": len(train),
        "seed": cell.seed,
        "test_rows": len(test),
        "accuracy": sweep[0]["accuracy"],
        "quality": sweep[0]["quality"],
        "cost_usd": sweep[0]["cost_usd"],
        "aiq": (
            metrics.aiq(costs, qualities, float(single_cost.min()), float(single_cost.max()))
            if priced and metrics.costs_differ(costs)
            else None  # one point is not a curve, and equal costs leave no cost range
        ),
        "best_single_member": test.members[best],
        "cost_to_best_single_quality": reach if priced else None,
        "cost_share_of_best_single": (
            reach / float(single_cost[best]) if priced and reach is not None else None
        ),
        "fit_s": fit_s,
        "predict_s": predict_s,
    }
    pair = two_members(test, splits.train)
    if pair is not None and single_quality[pair[0]] != single_quality[pair[1]]:
        weak, strong = pair
        shares = [p["shares"][strong] for p in sweep]
        qw, qs = float(single_quality[weak]), float(single_quality[strong])
        row["strong_share"] = sweep[0]["shares"][strong]
        row["apgr"] = metrics.apgr(shares, qualities, qw, qs)
        row["cpt50"] = metrics.cpt(shares, qualities, qw, qs, 0.5)
        row["cpt80"] = metrics.cpt(shares, qualities, qw, qs, 0.8)
    return {"row": row, "sweep": sweep, "choices": default_choices.tolist()}


def _sweep(
    router: LabRouter, test: RoutingTable
) -> tuple[list[SweepPoint], np.ndarray[Any, np.dtype[np.int64]]]:
    """The router's outcome at each knob, and its choices at the first (default) knob."""
    sweep: list[SweepPoint] = []
    default_choices: np.ndarray[Any, np.dtype[np.int64]] | None = None
    for knob in router.knobs():
        predicted = router.predict(test, knob)
        if isinstance(predicted, metrics.Replay):
            outcome = metrics.evaluate_replay(test, predicted)
            choices = predicted.kept
        else:
            outcome = metrics.evaluate(test, predicted)
            choices = predicted
        if default_choices is None:
            default_choices = choices
        sweep.append(
            {
                "knob": knob,
                "accuracy": outcome.accuracy,
                "quality": outcome.quality,
                "cost_usd": outcome.cost_usd,
                "shares": outcome.shares,
            }
        )
    assert default_choices is not None, "a lab router has at least one knob"
    return sweep, default_choices


def same_fit(cell: Cell) -> tuple[Any, ...]:
    """Cells with the same value compute the same result: a router that ignores the seed
    on the whole training split (or a rules file, which learns nothing) is fitted once."""
    router = cell.router
    if router.resolved_kind == "best_single":  # fitted on the whole split at every size
        return (cell.dataset.model_dump_json(), router.model_dump_json(), cell.seed)
    if router.resolved_seeded or (cell.train_size != "all" and router.resolved_kind != "rules"):
        return (cell.key,)
    return (cell.dataset.model_dump_json(), router.model_dump_json(), cell.train_size)


def _copies(todo: list[Cell]) -> dict[str, list[Cell]]:
    """The key of each cell to compute -> the cells (itself first) that take its result."""
    groups: dict[tuple[Any, ...], list[Cell]] = {}
    for cell in todo:
        groups.setdefault(same_fit(cell), []).append(cell)
    return {group[0].key: group for group in groups.values()}


def _write_all(out: Path, cells_: list[Cell], result: dict[str, Any], done: Progress) -> None:
    """Write one computed result as every cell of its group, each row with its own seed,
    training size and sample rows (best_single's group spans sizes)."""
    first = cells_[0]
    for cell in cells_:
        row = {**result["row"], "seed": cell.seed, "train_size": str(cell.train_size)}
        if cell.train_size != first.train_size:
            train = splits_for(cell).train
            row["train_rows"] = len(
                sample_train(train, cell.train_size, cell.seed, cell.per_member)
            )
        _write(out / "cells" / f"{cell.key}.json", {**result, "row": row})
        done(cell)


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)


def read_cell(out: Path, cell: Cell) -> dict[str, Any] | None:
    path = out / "cells" / f"{cell.key}.json"
    if not path.is_file():
        return None
    result: dict[str, Any] = json.loads(path.read_text())
    row = result.get("row", {})
    if row.get("train_size") != str(cell.train_size) or row.get("seed") != cell.seed:
        return None  # written for another cell of its group by an older version: recompute
    return result


Progress = Callable[[Cell], None]


def execute(
    todo: list[Cell],
    out: Path,
    *,
    workers: int = 1,
    ray_address: str | None = None,
    on_done: Progress | None = None,
) -> None:
    """Compute the cells in ``todo`` and write each to ``out/cells``."""
    done = on_done or (lambda _cell: None)
    copies = _copies(todo)
    if ray_address is not None:
        cells = [g[0] for g in copies.values()]
        for cell, result in run_on_ray(cells, ray_address, run_cell):
            _write_all(out, copies[cell.key], result, done)
        return
    if workers <= 1:
        for group in copies.values():
            _write_all(out, group, run_cell(group[0]), done)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending: dict[Future[dict[str, Any]], Cell] = {
            pool.submit(run_cell, cell): cell
            for cell in _dataset_major([g[0] for g in copies.values()])
        }
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                cell = pending.pop(future)
                try:
                    result = future.result()
                except PinfactoryError:
                    for other in pending:
                        other.cancel()
                    raise
                _write_all(out, copies[cell.key], result, done)


def _dataset_major(todo: Iterable[Cell]) -> list[Cell]:
    """Slow learners first, so the pool does not end on one long cell."""
    return sorted(todo, key=lambda c: (c.router.resolved_kind != "python", str(c.train_size)))
