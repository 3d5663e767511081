"""The lab reads the real evaluation data wherever the checkout sits."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinfactory.lab.datasets import default_root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lab_data() -> Path:
    root = default_root()
    if not (root / "routerbench").is_dir():
        root = REPO.parent / "shared" / "data"
    assert (root / "routerbench").is_dir(), f"evaluation data not found at {root}"
    return root
