"""Opening a team's ledger (or its whole pipeline) for one CLI command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from pinfactory.cli.common import clear_errors
from pinfactory.ledger import Ledger, open_ledger
from pinfactory.pipeline import open_pipeline
from pinfactory.team import Team

if TYPE_CHECKING:
    from pinfactory.pipeline import Pipeline

T = TypeVar("T")


def with_ledger(team: Team, work: Callable[[Ledger], Awaitable[T]]) -> T:
    """Run ``work`` on the team's ledger, opened and closed around it; errors exit 1."""

    async def run() -> T:
        spec = team.spec.ledger
        ledger = open_ledger(team.ledger_location, spec.durability, spec.journal_dir)
        await ledger.open()
        try:
            return await work(ledger)
        finally:
            await ledger.close()

    with clear_errors():
        return asyncio.run(run())


def with_pipeline(team: Team, work: Callable[[Pipeline], Awaitable[T]]) -> T:
    """Run ``work`` on the team's pipeline (members, ledger), opened around it; errors exit 1."""

    async def run() -> T:
        async with open_pipeline(team) as pipeline:
            return await work(pipeline)

    with clear_errors():
        return asyncio.run(run())
