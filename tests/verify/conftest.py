"""HaluEval for the grounding tests, found beside the project (or above a worktree)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def halueval() -> dict[str, list[dict[str, Any]]]:
    folder = next(
        (p / "shared" / "data" / "halueval" for p in ROOT.parents if (p / "shared/data").is_dir()),
        None,
    )
    assert folder is not None, "evaluation data (shared/data/halueval) not found"
    return {
        name: [json.loads(line) for line in (folder / name).read_text().splitlines()]
        for name in ("qa_one-turn_data.json", "qa_multi-turn_data.json")
    }
