"""Reading routing tables (prompts x members -> quality, cost) from files.

Four layouts, told apart by their columns:

- **generic log** (the lab's format, CSV / JSONL / Parquet): ``id``, ``prompt``,
  ``member``, ``quality``, ``cost_usd`` (+ ``label``, ``split``), one record
  per prompt and member; read by :mod:`pinfactory.routing.log_table`.

- **RouterBench CSV**: ``prompt``, ``sample_id``, ``eval_name``, one 0/1
  column per model, ``<model>|total_cost``; prompts are stored as the
  ``repr`` of a one-element Python list and are unwrapped.
- **Generic CSV**: ``prompt`` (and optionally ``id``, ``label``), then for
  each member ``<member>|quality`` and ``<member>|cost``.
- **JSONL**: one object a line, ``{"prompt": ..., "quality": {member: q},
  "cost": {member: usd}}`` (and optionally ``id``, ``label``).

Rows missing any member's quality or cost are dropped (only complete rows
compare routers fairly); the table's ``meta["dropped"]`` says how many.
"""

from __future__ import annotations

import ast
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pinfactory.errors import DatasetError, RoutingError
from pinfactory.routing.log_table import is_log, load_log, split_marks
from pinfactory.routing.table import RoutingTable

_COST_SUFFIXES = ("|total_cost", "|cost")


def load_tables(paths: Iterable[str | Path], split: str | None = None) -> RoutingTable:
    """Read and concatenate tables; every file must have the same members.

    ``split`` (``train`` or ``test``) keeps, from a generic log with a ``split``
    column, only that split's prompts; files without one are kept whole.
    """
    tables = [select_split(load_table(p), split) for p in paths]
    if not tables:
        raise RoutingError("no data files given")
    return concat(tables)


def select_split(table: RoutingTable, split: str | None) -> RoutingTable:
    """The rows of ``split`` when the table carries split marks, else the table."""
    if split is None:
        return table
    if split not in ("train", "test"):
        raise RoutingError(f"split {split!r}; allowed: train, test")
    marks = split_marks(table)
    if marks is None:
        return table
    rows = [i for i, mark in enumerate(marks) if mark == split]
    if not rows:
        raise RoutingError(f"{table.name}: no prompts in the '{split}' split")
    part = table.subset(rows)
    return replace(part, meta={**part.meta, "split": split})


def load_table(path: str | Path) -> RoutingTable:
    """One file: RouterBench CSV, wide generic CSV, JSONL, or the lab's generic log
    (one record per prompt and member; see :mod:`pinfactory.routing.log_table`)."""
    source = Path(path)
    if is_log(source):
        try:
            return load_log(source)
        except DatasetError as exc:
            raise RoutingError(exc.message) from None
    try:
        if source.suffix in (".jsonl", ".ndjson"):
            rows = [json.loads(line) for line in _lines(source) if line.strip()]
            return _from_jsonl(rows, source)
        return _from_csv(_csv_rows(source), source)
    except OSError as exc:
        raise RoutingError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    except (ValueError, KeyError) as exc:
        raise RoutingError(f"{source}: not a routing table: {exc}") from exc


def concat(tables: Sequence[RoutingTable]) -> RoutingTable:
    members = tables[0].members
    for table in tables[1:]:
        if table.members != members:
            raise RoutingError(
                f"{table.name}: members {table.members} differ from {tables[0].name}'s {members}"
            )
    labels = [t.labels for t in tables]
    return RoutingTable(
        ids=[i for t in tables for i in t.ids],
        prompts=[p for t in tables for p in t.prompts],
        members=list(members),
        quality=np.concatenate([t.quality for t in tables]),
        cost=np.concatenate([t.cost for t in tables]),
        labels=None if any(x is None for x in labels) else [y for x in labels for y in x or []],
        name="+".join(t.name for t in tables),
        meta={"dropped": str(sum(int(t.meta.get("dropped", "0")) for t in tables))}
        | (
            {"split": tables[0].meta["split"]}
            if len({t.meta.get("split") for t in tables}) == 1 and "split" in tables[0].meta
            else {}
        ),
    )


def _lines(source: Path) -> list[str]:
    return source.read_text(encoding="utf-8").splitlines()


def _csv_rows(source: Path) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with source.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _from_csv(rows: list[dict[str, str]], source: Path) -> RoutingTable:
    if not rows:
        raise ValueError("no rows")
    columns = list(rows[0])
    if "prompt" not in columns:
        raise ValueError(f"no 'prompt' column; columns: {', '.join(columns[:8])}")
    members = [c for c in columns if f"{c}|total_cost" in columns]
    quality_of = {m: m for m in members}
    cost_of = {m: f"{m}|total_cost" for m in members}
    if not members:
        members = [c.removesuffix("|quality") for c in columns if c.endswith("|quality")]
        quality_of = {m: f"{m}|quality" for m in members}
        cost_of = {m: _cost_column(m, columns) for m in members}
    if not members:
        raise ValueError(
            "no member columns: expected '<member>' + '<member>|total_cost' "
            "(RouterBench) or '<member>|quality' + '<member>|cost'"
        )
    records = [
        {
            "id": row.get("sample_id") or row.get("id") or str(n),
            "prompt": _unwrap(row["prompt"]),
            "label": row.get("eval_name") or row.get("label"),
            "quality": {m: row[quality_of[m]] for m in members},
            "cost": {m: row[cost_of[m]] for m in members},
        }
        for n, row in enumerate(rows)
    ]
    return _build(records, members, source)


def _cost_column(member: str, columns: list[str]) -> str:
    for suffix in _COST_SUFFIXES:
        if member + suffix in columns:
            return member + suffix
    raise ValueError(f"member '{member}' has a quality column but no '{member}|cost' column")


def _from_jsonl(rows: list[dict[str, Any]], source: Path) -> RoutingTable:
    if not rows:
        raise ValueError("no rows")
    members = list(rows[0]["quality"])
    records = [
        {
            "id": str(row.get("id", n)),
            "prompt": str(row["prompt"]),
            "label": row.get("label"),
            "quality": row["quality"],
            "cost": row["cost"],
        }
        for n, row in enumerate(rows)
    ]
    return _build(records, members, source)


def _build(records: list[dict[str, Any]], members: list[str], source: Path) -> RoutingTable:
    kept, quality, cost = [], [], []
    for record in records:
        q = [_number(record["quality"].get(m)) for m in members]
        c = [_number(record["cost"].get(m)) for m in members]
        if any(v is None for v in q + c):
            continue
        kept.append(record)
        quality.append(q)
        cost.append(c)
    if not kept:
        raise ValueError("no complete rows (every row misses some member's quality or cost)")
    labels = [r["label"] for r in kept]
    return RoutingTable(
        ids=[r["id"] for r in kept],
        prompts=[r["prompt"] for r in kept],
        members=members,
        quality=np.asarray(quality, dtype=np.float64),
        cost=np.asarray(cost, dtype=np.float64),
        labels=None if any(label is None for label in labels) else [str(x) for x in labels],
        name=source.stem,
        meta={"dropped": str(len(records) - len(kept))},
    )


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return float(value.lower() == "true")
    number = float(value)
    return None if np.isnan(number) else number


def _unwrap(prompt: str) -> str:
    """RouterBench stores each prompt as the repr of a list of strings."""
    if prompt.startswith("[") and prompt.endswith("]"):
        try:
            parts = ast.literal_eval(prompt)
        except (ValueError, SyntaxError):
            return prompt
        if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    return prompt


def load_responses(paths: Iterable[str | Path], table: RoutingTable) -> dict[str, list[str]]:
    """Each member's answer to each of ``table``'s prompts, in the table's row order.

    Reads RouterBench's ``<member>|model_response`` columns (stored, like the
    prompts, as the repr of a list of strings) from the files ``table`` was
    loaded from; a missing answer is ``""``.
    """
    found: dict[str, dict[str, str]] = {}
    for path in paths:
        source = Path(path)
        try:
            rows = _csv_rows(source)
        except OSError as exc:
            raise RoutingError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        for n, row in enumerate(rows):
            key = row.get("sample_id") or row.get("id") or str(n)
            found[key] = {
                m: _unwrap(row.get(f"{m}|model_response") or "").strip() for m in table.members
            }
    missing = [i for i in table.ids if i not in found]
    if missing:
        raise RoutingError(f"{len(missing)} table rows have no answers in the files given")
    return {m: [found[i][m] for i in table.ids] for m in table.members}


def routerbench_files(root: Path, split: str) -> list[Path]:
    """RouterBench's CSVs of one split (``train`` or ``test``) under the data folder ``root``."""
    return sorted((root / "routerbench").glob(f"*_{split}.csv"))


def load_routerbench(root: Path) -> tuple[RoutingTable, RoutingTable]:
    """RouterBench's (train, test) tables from the data folder ``root`` (``shared/data``)."""
    return (
        load_tables(routerbench_files(root, "train")),
        load_tables(routerbench_files(root, "test")),
    )
