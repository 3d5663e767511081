"""Routing fixtures: the real RouterBench and CLINC150 data, loaded once."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pinfactory.routing.table import RoutingTable
from pinfactory.routing.table_files import load_tables

HERE = Path(__file__).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``shared/data`` beside the project root or any of its parents (worktrees nest)."""
    for parent in HERE.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    pytest.fail(f"evaluation data (shared/data) not found above {HERE}")


@pytest.fixture(scope="session")
def routerbench_train(shared_data: Path) -> RoutingTable:
    """The train split, subsampled to 1,200 prompts to keep training quick."""
    table = load_tables(sorted(glob.glob(str(shared_data / "routerbench" / "*_train.csv"))))
    rows = np.random.default_rng(0).permutation(len(table))[:1200]
    return table.subset(np.sort(rows))


@pytest.fixture(scope="session")
def routerbench_test(shared_data: Path) -> RoutingTable:
    """The whole test split (complete rows)."""
    return load_tables(sorted(glob.glob(str(shared_data / "routerbench" / "*_test.csv"))))


@pytest.fixture(scope="session")
def clinc(shared_data: Path) -> dict[str, Any]:
    data = json.loads((shared_data / "clinc150" / "data_full.json").read_text())
    domains = json.loads((shared_data / "clinc150" / "domains.json").read_text())
    domain_of = {intent: d for d, intents in domains.items() for intent in intents}
    out: dict[str, Any] = {"domains": list(domains)}
    for split in ("train", "val", "test"):
        out[split] = ([t for t, _ in data[split]], [domain_of[i] for _, i in data[split]])
    for split in ("oos_val", "oos_test"):
        out[split] = [t for t, _ in data[split]]
    return out
