"""Work a request leaves for after its response has left: off the client's critical path.

What the client's answer does not wait for (metrics and traces, the access log, giving
back a rate-limit slot) is collected while the request runs and done once the response's
last byte is written: the gateway runs it right after the body's send, in the request's
own task, whether the send worked or not. What the answer depends on is never deferred:
the admission checks, the member call, budget reservations and the ledger row (its
journal frame or its commit) are all done before the response is built, so a process
killed after the answer still has the row.

Each piece runs on its own: one that fails is logged (``pinfactory.deferred``) and the
rest still run. A stream's observers wait for its last frame the same way (the gateway
runs them after the closing frames). Callers that serve no response (the CLI, the lab)
pass no :class:`Deferred`, and the same work runs inline, where it always did.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Work = Callable[..., Awaitable[None] | None]
"""A deferred call: a function or a coroutine function, its result ignored."""


class Deferred:
    """The calls one request left for after its response (in the order they were added)."""

    __slots__ = ("_work",)

    def __init__(self) -> None:
        self._work: list[tuple[Work, tuple[Any, ...]]] = []

    def add(self, work: Work, *args: Any) -> None:
        """Call ``work(*args)`` (and await what it returns, if anything) after the response."""
        self._work.append((work, args))

    def __bool__(self) -> bool:
        return bool(self._work)

    async def run(self) -> None:
        """Do every call added so far, once each; a call that raises is logged, never
        raised (the response it follows is already sent)."""
        work, self._work = self._work, []
        for call, args in work:
            try:
                pending = call(*args)
                if pending is not None:
                    await pending
            except Exception:  # the boundary: the answer is sent, nothing may undo it
                log.exception(
                    "work after a response failed: %s", getattr(call, "__qualname__", call)
                )


__all__ = ["Deferred", "Work"]
