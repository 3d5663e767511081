"""Shared fixtures of the verify tests: HaluEval (found beside the project or above a
worktree) and one grounding checker per session (its models load once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pinfactory.verify.grounding import GroundingChecker

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


@pytest.fixture(scope="session")
def checker() -> GroundingChecker:
    """The shipped checker, loaded once for every verify test."""
    return GroundingChecker()
