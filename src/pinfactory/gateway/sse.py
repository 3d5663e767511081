"""What the gateway's event streams share: the frame, and the writer each endpoint brings.

``/v1/chat/completions`` writes ``chat.completion.chunk`` frames
(:class:`~pinfactory.gateway.schema.ChunkWriter`), ``/v1/responses`` Responses events
(:class:`~pinfactory.gateway.response_events.ResponseEvents`); the app runs either
over the pipeline's stream the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pinfactory.errors import PinfactoryError
from pinfactory.gateway.departure import Departure
from pinfactory.outcome import Answer

_EVENT_STREAM = (b"content-type", b"text/event-stream; charset=utf-8")


def frame(body: dict[str, Any]) -> bytes:
    """One ``data:`` frame."""
    return b"data: " + orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"


class StreamWriter(Protocol):
    """Turns the pipeline's stream events into SSE frames."""

    ended: bytes
    """The frame after the last event (chat: ``data: [DONE]``), or nothing."""

    def opening(self, first: object) -> list[bytes]:
        """What goes before the first event (it is then passed to :meth:`write`)."""

    def write(self, event: object) -> list[bytes]:
        """The frames for one text delta or relayed chunk."""

    async def close(self, answer: Answer) -> list[bytes]:
        """The frames that end a recorded answer."""

    def failed(self, exc: PinfactoryError) -> bytes:
        """The error frame for a failure after the stream began."""


Body = Callable[[Callable[[bytes, bool], Awaitable[None]]], Awaitable[None]]
"""Writes a stream's body through ``write(data, more)``; ``more=False`` ends it."""


class EventStream(Response):
    """A ``text/event-stream`` response whose body ``body`` writes itself.

    Unlike Starlette's ``StreamingResponse`` (one message per item, then an empty one to
    end), the body decides what goes in each write, so the closing frames and the end of
    the chunked body leave in one, and the response head leaves with the first write. A
    client that hangs up cancels ``body`` (``departure``, the request's
    :class:`~pinfactory.gateway.departure.Departure`, watches ``receive``; one is started
    if none is given), so whatever it was streaming can book the loss.
    """

    media_type = "text/event-stream"

    def __init__(
        self, body: Body, headers: Mapping[str, str], departure: Departure | None = None
    ) -> None:
        self.status_code = 200
        self.background = None
        self.write_body = body
        self.departure = departure
        self.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]
        self.raw_headers.append(_EVENT_STREAM)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        del scope  # the ASGI signature; nothing in it changes the stream
        task = asyncio.current_task()
        assert task is not None
        departure = self.departure or Departure(receive)
        departure.cancel_on_leave(task)
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        started = False

        async def write(data: bytes, more: bool) -> None:
            # the head goes with the first frames, back to back: a client that woke for
            # the head is still awake for them (as for a plain answer), where a head
            # sent ahead would wake it twice
            nonlocal started
            if not started:
                started = True
                await send(start)
            await send({"type": "http.response.body", "body": data, "more_body": more})

        try:
            await self.write_body(write)
        except asyncio.CancelledError:
            if not departure.left:
                raise
            task.uncancel()  # the client left: the stream ends here, not the server
        finally:
            departure.stop()
