"""Shared fixtures: real teams, real gateways on loopback, real ledgers."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import Team, load_team

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = next(
    (p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data",
)
"""``../shared/data`` beside the checkout, or above it (a git worktree nests deeper)."""
FRONTIER_ENV = (
    "PINFACTORY_FRONTIER_BASE_URL",
    "PINFACTORY_FRONTIER_API_KEY",
    "PINFACTORY_FRONTIER_MODEL",
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"evaluation data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _no_frontier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the default team as a fresh machine does: no frontier keys."""
    for name in FRONTIER_ENV:
        monkeypatch.delenv(name, raising=False)


def default_team(ledger: Path) -> Team:
    environ = {k: v for k, v in os.environ.items() if k not in FRONTIER_ENV}
    environ["PINFACTORY_LEDGER"] = str(ledger)
    return load_team(None, environ)


def ledger_rows(path: Path, where: str = "1=1") -> list[sqlite3.Row]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(f"SELECT * FROM requests WHERE {where} ORDER BY seq").fetchall()
    finally:
        db.close()


@pytest.fixture(scope="session")
def gateway_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway") / "ledger.db"


@pytest.fixture(scope="session")
def gateway_url(gateway_ledger: Path) -> Iterator[str]:
    """The default team (Gemma, calculator, orders) served on loopback for the session."""
    with serve_in_thread(create_app(default_team(gateway_ledger))) as url:
        yield url
