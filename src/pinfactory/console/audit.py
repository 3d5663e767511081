"""Verifying the audit chain from the console: one walk at a time, with its progress.

A walk reads the chain page by page through the ledger's reader (the same
:class:`~pinfactory.ledger.chain.ChainWalk` that ``pinfactory audit verify``
uses), so the page can show how far it got, the last entry verified and, when
the chain is broken, the failing entry by number, kind and request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pinfactory.errors import LedgerError
from pinfactory.ledger.base import AuditRecord, ChainHead, Ledger
from pinfactory.ledger.chain import ChainReport, ChainWalk

PAGE = 2000


@dataclass(slots=True)
class Verification:
    """A walk of the chain: started/finished (epoch s), progress, and what it found."""

    started: float
    total: int = 0
    checked: int = 0
    last: ChainHead | None = None
    report: ChainReport | None = None
    failing: AuditRecord | None = None
    finished: float | None = None

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def percent(self) -> int:
        if self.done:
            return 100
        return min(99, int(100 * self.checked / self.total)) if self.total else 0


class ChainChecks:
    """Runs at most one verification at a time and keeps the latest for the page."""

    def __init__(self, ledger: Ledger, page: int = PAGE) -> None:
        self.ledger = ledger
        self.page = page
        self.latest: Verification | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Verification:
        """Start a walk, or return the one still running."""
        if self.latest is not None and not self.latest.done:
            return self.latest
        self.latest = Verification(time.time())
        self._task = asyncio.get_running_loop().create_task(self._walk(self.latest))
        return self.latest

    async def _walk(self, job: Verification) -> None:
        walk = ChainWalk()
        try:
            head = await self.ledger.head()
            job.total = head.seq
            after = 0
            while records := await self.ledger.audit(after=after, limit=self.page):
                intact = walk.feed(records)
                job.checked, job.last = walk.checked, walk.last
                if not intact:
                    break
                after = records[-1].seq
            job.report = walk.finish(head)
            broken = job.report.broken_seq
            if broken is not None:
                found = await self.ledger.audit(after=broken - 1, limit=1)
                job.failing = found[0] if found and found[0].seq == broken else None
        except LedgerError as exc:
            job.report = ChainReport(walk.checked, None, f"could not read the chain: {exc}")
        finally:
            job.last = walk.last if walk.checked else None
            job.finished = time.time()
