"""Server-sent events of a streamed ``/v1/messages`` answer, in Anthropic's order.

::

    message_start
    -> content_block_start (text) -> content_block_delta (text_delta) ... -> content_block_stop
    -> content_block_start (tool_use) -> content_block_delta (input_json_delta) ...
    -> content_block_stop
    -> message_delta (stop_reason, output usage) -> message_stop

Each event is framed ``event: <type>`` + ``data: <json>``. A block opens when its first
delta comes (text deltas, or a relayed chunk's tool-call deltas,
:class:`~pinfactory.members.base.Delta`) and closes when the next opens; the last one
closes, and the message ends, once the pipeline has recorded the answer. A failure after
the stream began ends it with an ``error`` event in Anthropic's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pinfactory.errors import PinfactoryError
from pinfactory.gateway.messages import MessagesCall, anthropic_error, stop_fields, usage_of
from pinfactory.gateway.sse import frame
from pinfactory.members.base import Delta
from pinfactory.outcome import Answer


def event(kind: str, body: dict[str, Any]) -> bytes:
    """One ``event:`` + ``data:`` frame; ``body`` gets its ``type``."""
    return b"event: " + kind.encode() + b"\n" + frame({"type": kind, **body})


@dataclass(slots=True)
class MessageEvents:
    """Turns the pipeline's stream events into Messages events
    (:class:`~pinfactory.gateway.sse.StreamWriter`)."""

    call: MessagesCall
    member: str
    ended: bytes = b""
    _open: str | None = None
    """The kind of the block open now (``text``, or ``tool:<index>`` of a tool call)."""
    _blocks: int = 0

    def opening(self, first: object) -> list[bytes]:
        del first  # every answer opens the same way
        message: dict[str, Any] = {
            "id": self.call.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.member,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.call.request.prompt_tokens, "output_tokens": 0},
        }
        return [event("message_start", {"message": message})]

    def write(self, item: object) -> list[bytes]:
        if isinstance(item, str):
            return self._text(item) if item else []
        if not isinstance(item, Delta):
            return []
        frames: list[bytes] = []
        for choice in item.chunk.choices:
            if choice.index != 0:
                continue  # Messages has one answer
            if choice.delta.content:
                frames += self._text(choice.delta.content)
            for call in choice.delta.tool_calls or ():
                frames += self._tool(call.index, call.id, call.function)
        return frames

    async def close(self, answer: Answer) -> list[bytes]:
        frames = self._close_block()
        usage = usage_of(answer)
        stop = stop_fields(self.call, answer.completion)
        frames.append(
            event("message_delta", {"delta": stop, "usage": usage, "pinfactory": answer.metadata()})
        )
        frames.append(event("message_stop", {}))
        return frames

    def failed(self, exc: PinfactoryError) -> bytes:
        body = anthropic_error(exc)
        return event("error", {"error": body["error"]})

    def _text(self, text: str) -> list[bytes]:
        frames = self._begin("text", {"type": "text", "text": ""})
        delta = {"index": self._blocks - 1, "delta": {"type": "text_delta", "text": text}}
        frames.append(event("content_block_delta", delta))
        return frames

    def _tool(self, index: int, call_id: str | None, function: Any) -> list[bytes]:
        frames: list[bytes] = []
        kind = f"tool:{index}"
        if self._open != kind:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call_id or f"toolu_{self.call.message_id}_{index}",
                "name": (function.name if function is not None else None) or "",
                "input": {},
            }
            frames += self._begin(kind, block)
        arguments = function.arguments if function is not None else None
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            frames.append(event("content_block_delta", {"index": self._blocks - 1, "delta": delta}))
        return frames

    def _begin(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        if self._open == kind:
            return []
        frames = self._close_block()
        frames.append(event("content_block_start", {"index": self._blocks, "content_block": block}))
        self._open = kind
        self._blocks += 1
        return frames

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [event("content_block_stop", {"index": self._blocks - 1})]
