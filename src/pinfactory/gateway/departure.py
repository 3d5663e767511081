"""Noticing a client that hangs up while its request runs.

A server learns that its client left only by asking: ASGI delivers
``{"type": "http.disconnect"}`` from ``receive()`` once the connection is gone
(uvicorn does as soon as the socket closes, whether or not anything was
written). A :class:`Departure` asks, in a task of its own, from the moment a
request's body has been read until its response is done; under ``pinfactory serve``
the server tells instead (a :class:`Hangup` in the request's scope, set when the
connection is lost), which costs no task per request.

What each path does with it:

- a plain answer's work (its member's call, its verification) is cancelled at once,
  since nothing would use its answer, and booked 499 with a cancelled call's prompt
  tokens, counted (:meth:`Pipeline.complete`'s ``left``);
- a stream whose client left before the first byte is closed as soon as its
  first event arrives, booked 499 with the tokens counted so far;
- a stream under way is cancelled at once (:class:`~pinfactory.gateway.sse.EventStream`
  names its task with :meth:`Departure.cancel_on_leave`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Receive, Scope

HANGUP = "pinfactory.hangup"
"""The ``scope["extensions"]`` key under which ``pinfactory serve``'s HTTP protocol
(:class:`~pinfactory.gateway.server.GuardedHttpTools`) hands each request its
:class:`Hangup`."""


class Hangup:
    """What the server knows of one request's connection, told without a task: ``gone``
    once the client hung up before its response was complete, and ``body_complete``
    once the request's whole body has arrived. ``notify``, when set, is called once, on
    the hang-up (from the event loop's own callback, so it must not block).
    """

    __slots__ = ("body_complete", "gone", "notify")

    def __init__(self) -> None:
        self.gone = False
        self.body_complete = False
        self.notify: Callable[[], None] | None = None

    def hung_up(self) -> None:
        """The server's call when the connection is lost mid-request."""
        self.gone = True
        notify, self.notify = self.notify, None
        if notify is not None:
            notify()


def hangup_of(scope: Scope) -> Hangup | None:
    """The request's :class:`Hangup` when its server gives one (``pinfactory serve``)."""
    extensions = scope.get("extensions")
    return extensions.get(HANGUP) if extensions else None


class Departure:
    """Watches for the client hanging up; start it only once the body is read.

    ``left`` is true from the moment the client hung up. Under ``pinfactory serve`` the
    server says so itself (``hangup``, the request's :class:`Hangup`); elsewhere a task
    watches ``receive`` for ``http.disconnect``. Call :meth:`stop` when the response is
    done (a watcher left waiting would take the response's own ``receive`` messages).
    """

    __slots__ = ("_hangup", "_target", "_watcher", "left")

    def __init__(self, receive: Receive, hangup: Hangup | None = None) -> None:
        self._target: asyncio.Task[object] | None = None
        self._hangup = hangup
        self._watcher: asyncio.Task[None] | None = None
        if hangup is not None:
            self.left = hangup.gone
            if not hangup.gone:
                hangup.notify = self._left
        else:
            self.left = False
            self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._left()

    def _left(self) -> None:
        self.left = True
        if self._target is not None:
            self._target.cancel()

    def cancel_on_leave(self, task: asyncio.Task[object] | None) -> None:
        """Cancel ``task`` when the client leaves (``None``: cancel nothing)."""
        self._target = task

    def stop(self) -> None:
        """Stop watching; nothing is cancelled after this."""
        self._target = None
        if self._hangup is not None:
            self._hangup.notify = None
        if self._watcher is not None:
            self._watcher.cancel()
