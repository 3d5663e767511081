"""What the gateway's event streams share: the frame, and the writer each endpoint brings.

``/v1/chat/completions`` writes ``chat.completion.chunk`` frames
(:class:`~pinfactory.gateway.schema.ChunkWriter`), ``/v1/responses`` Responses events
(:class:`~pinfactory.gateway.response_events.ResponseEvents`); the app runs either
over the pipeline's stream the same way.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from pinfactory.errors import PinfactoryError
from pinfactory.outcome import Answer


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
