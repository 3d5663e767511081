"""Server-sent events of a streamed ``/v1/responses`` answer, in the reference's order.

::

    response.created -> response.in_progress
    -> response.output_item.added (message) -> response.content_part.added
    -> response.output_text.delta ... -> response.output_text.done
    -> response.content_part.done -> response.output_item.done
    -> response.output_item.added (function_call) -> response.function_call_arguments.delta ...
    -> response.function_call_arguments.done -> response.output_item.done
    -> response.completed (or response.incomplete when the output cap cut it)

Each event carries its ``type`` and a ``sequence_number`` counting from 0, and is framed
``event: <type>`` + ``data: <json>``. Text deltas and a relayed chunk's tool-call deltas
(:class:`~pinfactory.members.base.Delta`) open their output item when they first appear;
items close, in the order they opened, once the pipeline has recorded the answer. The
``Response`` objects inside are :func:`~pinfactory.gateway.responses.response_shell`'s
(``openai.types.responses.Response``); the last one carries the ``pinfactory`` block, and
is stored (with ``store``) before it is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from openai.types.chat import ChatCompletionMessageToolCall
from openai.types.chat.chat_completion_message_function_tool_call import Function

from pinfactory.errors import PinfactoryError
from pinfactory.gateway.responses import (
    Output,
    ResponsesCall,
    message_item,
    response_json,
    response_shell,
    stored,
    text_part,
    usage_of,
)
from pinfactory.ledger.base import StoredResponse
from pinfactory.members.base import Delta
from pinfactory.outcome import Answer


@dataclass(slots=True)
class _Call:
    """A function call being streamed: its output slot, ids, name and arguments so far."""

    index: int
    item_id: str
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)

    def item(self, status: str) -> dict[str, Any]:
        return {
            "id": self.item_id,
            "type": "function_call",
            "call_id": self.call_id,
            "name": self.name,
            "arguments": "".join(self.arguments) if status == "completed" else "",
            "status": status,
        }


class ResponseEvents:
    """Turns the pipeline's stream events into Responses events (SSE frames)."""

    ended = b""
    """The reference ends a Responses stream with its last event (no ``[DONE]``)."""

    def __init__(
        self,
        call: ResponsesCall,
        member: str,
        keep: Callable[[StoredResponse], Awaitable[None]],
    ) -> None:
        self.call = call
        self.member = member
        self.keep = keep
        self._suffix = call.response_id.removeprefix("resp_")
        self._seq = 0
        self._slots = 0  # output items opened so far
        self._text: list[str] | None = None  # the message being streamed, once opened
        self._logprobs: list[dict[str, Any]] = []
        self._text_index = 0
        self._calls: dict[int, _Call] = {}  # by the chunk's tool-call index

    def _event(self, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"

    def opening(self, first: object) -> list[bytes]:
        del first  # every answer opens the same way
        shell = response_json(response_shell(self.call, self.member, "in_progress", []), None)
        return [
            self._event("response.created", response=shell),
            self._event("response.in_progress", response=shell),
        ]

    def write(self, event: object) -> list[bytes]:
        if isinstance(event, str):
            return self._say(event) if event else []
        if isinstance(event, Delta):
            return self._relay(event)
        return []

    def _say(self, text: str, logprobs: list[dict[str, Any]] | None = None) -> list[bytes]:
        frames = []
        if self._text is None:
            frames += self._open_message()
        assert self._text is not None
        self._text.append(text)
        self._logprobs += logprobs or []
        frames.append(
            self._event(
                "response.output_text.delta",
                item_id="msg_" + self._suffix,
                output_index=self._text_index,
                content_index=0,
                delta=text,
                logprobs=logprobs or [],
            )
        )
        return frames

    def _open_message(self) -> list[bytes]:
        self._text, self._text_index = [], self._slots
        self._slots += 1
        item = message_item(self._suffix, "", "in_progress").model_dump(mode="json")
        return [
            self._event("response.output_item.added", output_index=self._text_index, item=item),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=self._text_index,
                content_index=0,
                part=text_part("").model_dump(mode="json"),
            ),
        ]

    def _relay(self, delta: Delta) -> list[bytes]:
        frames: list[bytes] = []
        for choice in delta.chunk.choices:
            if choice.index != 0:
                continue  # Responses has one output; n > 1 is a chat parameter
            if delta.text:
                scored = choice.logprobs.content if choice.logprobs is not None else None
                frames += self._say(delta.text, [t.model_dump(mode="json") for t in scored or ()])
            for piece in choice.delta.tool_calls or ():
                call = self._calls.get(piece.index)
                function = piece.function
                if call is None:
                    call = _Call(
                        self._slots,
                        f"fc_{self._suffix}_{len(self._calls)}",
                        piece.id or "",
                        (function.name if function else None) or "",
                    )
                    self._calls[piece.index] = call
                    self._slots += 1
                    frames.append(
                        self._event(
                            "response.output_item.added",
                            output_index=call.index,
                            item=call.item("in_progress"),
                        )
                    )
                if function is not None and function.arguments:
                    call.arguments.append(function.arguments)
                    frames.append(
                        self._event(
                            "response.function_call_arguments.delta",
                            item_id=call.item_id,
                            output_index=call.index,
                            delta=function.arguments,
                        )
                    )
        return frames

    async def close(self, answer: Answer) -> list[bytes]:
        """Close every open item, store the response (with ``store``), then complete it."""
        frames = []
        if self._text is None and not self._calls:  # an empty answer is one empty message
            frames = self._open_message()
        items: list[tuple[int, dict[str, Any]]] = []
        if self._text is not None:
            text = "".join(self._text)
            item_id, index = "msg_" + self._suffix, self._text_index
            part = text_part(text, self._logprobs).model_dump(mode="json")
            frames.append(
                self._event(
                    "response.output_text.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=self._logprobs,
                )
            )
            frames.append(
                self._event(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    part=part,
                )
            )
            message = message_item(self._suffix, text, "completed", self._logprobs)
            item = message.model_dump(mode="json")
            frames.append(self._event("response.output_item.done", output_index=index, item=item))
            items.append((index, item))
        for call in self._calls.values():
            item = call.item("completed")
            frames.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=call.item_id,
                    output_index=call.index,
                    name=call.name,
                    arguments=item["arguments"],
                )
            )
            frames.append(
                self._event("response.output_item.done", output_index=call.index, item=item)
            )
            items.append((call.index, item))
        cut = answer.completion.finish_reason == "length"
        status = "incomplete" if cut else "completed"
        output = [item for _, item in sorted(items, key=lambda pair: pair[0])]
        response = response_shell(self.call, self.member, status, output, usage_of(answer))
        body = response_json(response, answer)
        if self.call.store:
            await self.keep(stored(self.call, self._output(), body))
        frames.append(self._event(f"response.{status}", response=body))
        return frames

    def _output(self) -> Output:
        calls = [
            ChatCompletionMessageToolCall(
                id=c.call_id,
                type="function",
                function=Function(name=c.name, arguments="".join(c.arguments)),
            )
            for c in self._calls.values()
        ]
        return Output("".join(self._text or ()), calls, self._logprobs)

    def failed(self, exc: PinfactoryError) -> bytes:
        """The reference's ``error`` event for a failure after the stream began."""
        return self._event("error", code=exc.code, message=exc.message, param=exc.param)
