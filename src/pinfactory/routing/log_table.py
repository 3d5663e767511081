"""The generic log format: bring your own prompts x members results.

One record per (prompt, member) observation, in CSV, JSONL or Parquet:

| column     | required | meaning                                            |
|------------|----------|----------------------------------------------------|
| `id`       | yes      | the prompt's id (the same for all its members)     |
| `prompt`   | yes      | the prompt text                                    |
| `member`   | yes      | which member answered                              |
| `quality`  | yes      | how well, a number in [0, 1]                       |
| `cost_usd` | yes      | what that answer cost, USD, >= 0                   |
| `label`    | no       | a class label for the prompt (intent, domain, ...) |
| `split`    | no       | `train` or `test`; rows without it are hashed      |

Every prompt must have a record for every member. Each mistake is reported
with the file and the row number (the CSV line, the JSONL line, the Parquet
row counted from 1).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pinfactory.errors import DatasetError
from pinfactory.routing.table import RoutingTable

REQUIRED = ("id", "prompt", "member", "quality", "cost_usd")


def read_records(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(row number, record) pairs of a CSV, JSONL or Parquet file."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        csv.field_size_limit(sys.maxsize)
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            _check_header(path, reader.fieldnames or [])
            for number, record in enumerate(reader, start=2):
                yield number, record
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}, row {number}: not JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise DatasetError(f"{path}, row {number}: expected a JSON object")
                _check_header(path, list(record), number)
                yield number, record
    elif suffix == ".parquet":
        # pyarrow (about 0.15 s to import) loads only for Parquet files
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        _check_header(path, table.column_names)
        for number, record in enumerate(table.to_pylist(), start=1):
            yield number, record
    else:
        raise DatasetError(f"{path}: unknown format '{suffix}'; allowed: .csv, .jsonl, .parquet")


def _check_header(path: Path, columns: Sequence[str], row: int | None = None) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        where = f"{path}, row {row}" if row is not None else f"{path}"
        raise DatasetError(
            f"{where}: missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}"
        )


def number(path: Path, row: int, field: str, value: Any) -> float:
    """A finite float from a record field, or a clear error naming the row."""
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{path}, row {row}: {field} {value!r} is not a number") from None
    if not math.isfinite(parsed):
        raise DatasetError(f"{path}, row {row}: {field} {value!r} is not a finite number")
    return parsed


def is_log(path: Path) -> bool:
    """Whether a file is in the generic log format (one record per prompt and member)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as handle:
                columns = next(csv.reader(handle), [])
        elif suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8") as handle:
                first = next((line for line in handle if line.strip()), "{}")
            record = json.loads(first)
            columns = list(record) if isinstance(record, dict) else []
        elif suffix == ".parquet":
            # pyarrow (about 0.15 s to import) loads only for Parquet files
            import pyarrow.parquet as pq

            columns = list(pq.read_schema(path).names)
        else:
            return False
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return all(c in columns for c in REQUIRED)


def split_marks(table: RoutingTable) -> list[str] | None:
    """Each prompt's ``split`` (``train``/``test``) when every prompt of the log has one."""
    if "splits" not in table.meta:
        return None
    marks: list[str] = json.loads(table.meta["splits"])
    return marks if all(marks) else None


def load_log(path: str | Path, name: str | None = None) -> RoutingTable:
    """A :class:`RoutingTable` from a generic log, validated row by row."""
    path = Path(path)
    prompts: dict[str, str] = {}
    labels: dict[str, str] = {}
    splits: dict[str, str] = {}
    cells: dict[tuple[str, str], tuple[float, float]] = {}
    members: dict[str, None] = {}
    first_row: dict[str, int] = {}
    for row, record in read_records(path):
        pid, member, quality, cost = _observation(path, row, record)
        if (pid, member) in cells:
            raise DatasetError(
                f"{path}, row {row}: duplicate id '{pid}' for member '{member}' "
                f"(first at row {first_row[pid]})"
            )
        prompt = str(record["prompt"])
        if pid in prompts and prompts[pid] != prompt:
            raise DatasetError(
                f"{path}, row {row}: id '{pid}' has a different prompt than at row "
                f"{first_row[pid]} (duplicate id)"
            )
        prompts.setdefault(pid, prompt)
        first_row.setdefault(pid, row)
        if record.get("label") not in (None, ""):
            labels[pid] = str(record["label"])
        if record.get("split") not in (None, ""):
            split = str(record["split"]).strip().lower()
            if split not in ("train", "test"):
                raise DatasetError(f"{path}, row {row}: split {split!r}; allowed: train, test")
            splits[pid] = split
        members.setdefault(member, None)
        cells[(pid, member)] = (quality, cost)
    if not prompts:
        raise DatasetError(f"{path}: no records")
    ids = list(prompts)
    names = list(members)
    quality_table, cost_table = _tables(path, ids, names, cells, first_row)
    if labels and len(labels) != len(ids):
        unlabelled = next(pid for pid in ids if pid not in labels)
        raise DatasetError(
            f"{path}, row {first_row[unlabelled]}: id '{unlabelled}' has no label; "
            "give a label to every prompt or to none"
        )
    meta = {"source": str(path)}
    if splits:
        meta["splits"] = json.dumps([splits.get(pid, "") for pid in ids])
    return RoutingTable(
        ids=ids,
        prompts=[prompts[pid] for pid in ids],
        members=names,
        quality=quality_table,
        cost=cost_table,
        labels=[labels[pid] for pid in ids] if labels else None,
        name=name or path.stem,
        meta=meta,
    )


def _observation(path: Path, row: int, record: Mapping[str, Any]) -> tuple[str, str, float, float]:
    """One record's (id, member, quality, cost), checked."""
    pid = str(record["id"]).strip()
    member = str(record["member"]).strip()
    if not pid or not member:
        raise DatasetError(f"{path}, row {row}: id and member must not be empty")
    quality = number(path, row, "quality", record["quality"])
    cost = number(path, row, "cost_usd", record["cost_usd"])
    if not 0.0 <= quality <= 1.0:
        raise DatasetError(f"{path}, row {row}: quality {quality} is outside [0, 1]")
    if cost < 0:
        raise DatasetError(f"{path}, row {row}: cost_usd {cost} is negative")
    return pid, member, quality, cost


def _tables(
    path: Path,
    ids: list[str],
    names: list[str],
    cells: dict[tuple[str, str], tuple[float, float]],
    first_row: dict[str, int],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The (prompts x members) quality and cost arrays; every cell must be present."""
    quality = np.zeros((len(ids), len(names)))
    cost = np.zeros((len(ids), len(names)))
    for i, pid in enumerate(ids):
        for j, member in enumerate(names):
            found = cells.get((pid, member))
            if found is None:
                raise DatasetError(
                    f"{path}, row {first_row[pid]}: id '{pid}' has no record for member "
                    f"'{member}'; every prompt needs one per member"
                )
            quality[i, j], cost[i, j] = found
    return quality, cost
