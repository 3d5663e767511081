"""Noticing a client that hangs up while its request runs.

A server learns that its client left only by asking: ASGI delivers
``{"type": "http.disconnect"}`` from ``receive()`` once the connection is gone
(uvicorn does as soon as the socket closes, whether or not anything was
written). A :class:`Departure` asks, in a task of its own, from the moment a
request's body has been read until its response is done.

What each path does with it:

- a plain answer lets its member finish and is booked 499 with the member's
  reported usage and cost (:meth:`Pipeline.complete`'s ``left``): a non-streamed
  upstream call is paid whole whether or not anyone reads it, and its usage
  arrives only with its body, so cancelling it would lose the true spend;
- a stream whose client left before the first byte is closed as soon as its
  first event arrives, booked 499 with the tokens counted so far;
- a stream under way is cancelled at once (:class:`~pinfactory.gateway.sse.EventStream`
  names its task with :meth:`Departure.cancel_on_leave`).
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive


class Departure:
    """Watches ``receive`` for ``http.disconnect``; start it only once the body is read.

    ``left`` is true from the moment the client hung up. Call :meth:`stop`
    when the response is done (a watcher left waiting would take the
    response's own ``receive`` messages).
    """

    __slots__ = ("_target", "_watcher", "left")

    def __init__(self, receive: Receive) -> None:
        self.left = False
        self._target: asyncio.Task[object] | None = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.left = True
        if self._target is not None:
            self._target.cancel()

    def cancel_on_leave(self, task: asyncio.Task[object] | None) -> None:
        """Cancel ``task`` when the client leaves (``None``: cancel nothing)."""
        self._target = task

    def stop(self) -> None:
        """Stop watching; nothing is cancelled after this."""
        self._target = None
        self._watcher.cancel()
