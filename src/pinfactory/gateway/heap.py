"""The served worker's garbage collector, settled once start-up is done.

Start-up builds a large, long-lived heap (the team, its members and routers, the
encoder, pydantic's and openai's types: some 130,000 tracked objects). CPython's
cyclic collector walks all of it on every full collection, which a busy worker
triggers again and again as request objects age: tens of milliseconds each, taken
from whichever requests are in flight. :func:`settle_heap` collects once and freezes
what is left (``gc.freeze``), so later collections walk only what requests made, and
raises the youngest generation's threshold so that fewer short-lived request objects
are caught alive and aged at all. Nothing is leaked: frozen objects are still freed
by reference counting, and cycles made after start-up are collected as before.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Net container allocations between two collections of the youngest generation
(CPython's default is 700: about one collection per request here)."""


def settle_heap() -> None:
    """Collect, then freeze the surviving heap and raise the young threshold. Call once
    in a serving process, after its start-up and before its first request."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
