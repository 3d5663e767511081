"""``POST /v1/messages`` (Anthropic's Messages API) as a translation onto the chat pipeline.

Cheap because the pipeline is shape-agnostic: a Messages body is checked against the
models below (the request fields this gateway serves, in Anthropic's own shape), then
becomes the chat :class:`~pinfactory.request.Request` the pipeline routes, calls,
verifies and records like any other; every chat check (capabilities, tool schemas,
``tool_choice`` naming a tool offered) applies, its error naming the Messages field:

==============================  ====================================================
Messages                        chat
==============================  ====================================================
``system`` (text or blocks)     a leading ``system`` message
``text`` / ``image`` blocks     ``text`` / ``image_url`` content parts (base64 as a
                                ``data:`` URL)
``tool_use`` blocks             the ``assistant`` message's ``tool_calls``
``tool_result`` blocks          ``tool`` messages with their ``tool_call_id``, before
                                the rest of that user turn
``tools`` (name, input_schema)  function ``tools`` (``parameters``)
``tool_choice`` auto/any/tool/  ``auto`` / ``required`` / that function / ``none``;
none                            ``disable_parallel_tool_use``: ``parallel_tool_calls``
``max_tokens``                  ``max_tokens``
``stop_sequences``              ``stop``
``metadata.user_id``            ``user``
==============================  ====================================================

The answer is a ``message`` (text and ``tool_use`` content blocks, ``stop_reason``
``end_turn`` / ``max_tokens`` / ``tool_use`` / ``stop_sequence`` with the one met when the
member can tell (the local model can), usage in input and output tokens); errors
are Anthropic's ``{"type": "error", "error": {"type", "message"}}`` with the same
status codes. Streaming events are in :mod:`pinfactory.gateway.message_events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from pinfactory.errors import PinfactoryError, RequestError
from pinfactory.gateway.schema import field_error, json_body, request_of, served_only
from pinfactory.members.base import Completion
from pinfactory.outcome import Answer
from pinfactory.request import Request


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Cached(_Shape):
    """A block may carry ``cache_control`` (prompt caching upstream); it is accepted and
    has no effect here."""

    cache_control: dict[str, Any] | None = None


class TextBlock(_Cached):
    type: Literal["text"]
    text: StrictStr
    citations: list[Any] | None = None


class Base64Source(_Shape):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: StrictStr


class URLSource(_Shape):
    type: Literal["url"]
    url: StrictStr


class ImageBlock(_Cached):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]


class ToolUseBlock(_Cached):
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: dict[str, Any]


class ToolResultBlock(_Cached):
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] = ""
    is_error: StrictBool | None = None


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")
]


class MessageParam(_Shape):
    role: Literal["user", "assistant"]
    content: StrictStr | list[Block]


class ToolParam(_Cached):
    name: StrictStr = Field(min_length=1, max_length=128)
    description: StrictStr | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None


class ToolChoice(_Shape):
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = None
    disable_parallel_tool_use: StrictBool | None = None


class Metadata(_Shape):
    user_id: StrictStr | None = None


class MessagesBody(_Shape):
    """The Messages request fields this gateway serves."""

    model: StrictStr
    max_tokens: int = Field(gt=0)
    messages: list[MessageParam] = Field(min_length=1)
    system: StrictStr | list[TextBlock] | None = None
    stop_sequences: list[StrictStr] | None = None
    stream: StrictBool | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None


SERVED = frozenset(MessagesBody.model_fields)
_RENAMED = {"stop": "stop_sequences", "max_completion_tokens": "max_tokens"}


@dataclass(frozen=True, slots=True)
class MessagesCall:
    """A parsed Messages request: the chat request to run, and the message id."""

    request: Request

    @property
    def message_id(self) -> str:
        return "msg_" + self.request.request_id.removeprefix("req_")


def parse_messages(body: bytes, **who: Any) -> MessagesCall:
    """Check a Messages body and translate it; a 400 naming the field for anything
    Anthropic's API refuses or this gateway does not serve. ``who``: ``unit``, ``user``,
    ``headers``, ``request_id``, ``correlation_id``, as :func:`request_of` takes them."""
    data = json_body(body)
    served_only(data, SERVED, "/v1/messages")
    if isinstance(data.get("messages"), list):
        # blocks sent back as an SDK dumps them carry nulls for absent fields
        data["messages"] = [_without_nulls(message) for message in data["messages"]]
    try:
        parsed = MessagesBody.model_validate(data)
    except ValidationError as exc:
        raise field_error(exc, data) from exc
    chat = to_chat(parsed)
    try:
        request, _ = request_of(chat, **who)
    except RequestError as exc:
        raise _renamed(exc) from exc
    return MessagesCall(request)


def _without_nulls(message: object) -> object:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    blocks = [
        {k: v for k, v in block.items() if v is not None} if isinstance(block, dict) else block
        for block in message["content"]
    ]
    return {**message, "content": blocks}


def to_chat(body: MessagesBody) -> dict[str, Any]:
    """The chat completions body for a checked Messages body."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.system, str) and body.system:
        messages.append({"role": "system", "content": body.system})
    elif isinstance(body.system, list) and body.system:
        parts = [{"type": "text", "text": block.text} for block in body.system]
        messages.append({"role": "system", "content": parts})
    for message in body.messages:
        messages += _chat_messages(message)
    chat: dict[str, Any] = {"model": body.model, "messages": messages}
    chat["max_tokens"] = body.max_tokens
    if body.stop_sequences:
        chat["stop"] = body.stop_sequences
    for name in ("temperature", "top_p", "stream"):
        if getattr(body, name) is not None:
            chat[name] = getattr(body, name)
    if body.metadata is not None and body.metadata.user_id:
        chat["user"] = body.metadata.user_id
    if body.tools:
        chat["tools"] = [_chat_tool(tool) for tool in body.tools]
    if body.tool_choice is not None:
        choice = body.tool_choice
        if choice.type == "tool":
            if not choice.name:
                raise RequestError(
                    "'tool_choice.name' is required when 'tool_choice.type' is 'tool'",
                    param="tool_choice.name",
                )
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        if choice.disable_parallel_tool_use is not None and body.tools:
            chat["parallel_tool_calls"] = not choice.disable_parallel_tool_use
    return chat


def _chat_messages(message: MessageParam) -> list[dict[str, Any]]:
    """One Messages turn as chat messages: tool results first (each a ``tool``
    message), then the turn's text and images, an assistant's tool uses as its calls."""
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            content = block.content
            text = content if isinstance(content, str) else [_part(b) for b in content]
            out.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": text})
        elif isinstance(block, ToolUseBlock):
            arguments = orjson.dumps(block.input).decode()
            function = {"name": block.name, "arguments": arguments}
            calls.append({"id": block.id, "type": "function", "function": function})
        else:
            parts.append(_part(block))
    if message.role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        if any(p["type"] != "text" for p in parts):
            raise RequestError(
                "an assistant turn carries text and tool_use blocks only", param="messages"
            )
        if text or calls:
            said: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                said["tool_calls"] = calls
            out.append(said)
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _part(block: TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        source = block.source
        url = (
            source.url
            if isinstance(source, URLSource)
            else f"data:{source.media_type};base64,{source.data}"
        )
        return {"type": "image_url", "image_url": {"url": url}}
    raise RequestError(  # a tool block inside a tool result
        f"a '{block.type}' block cannot be nested in a tool_result", param="messages"
    )


def _chat_tool(tool: ToolParam) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _renamed(exc: RequestError) -> RequestError:
    """A chat check's error, naming the Messages field (``tools.0.function.parameters``
    -> ``tools.0.input_schema``, ``stop`` -> ``stop_sequences``)."""
    param = exc.param or ""
    head, _, rest = param.partition(".")
    if head == "tools":
        fixed = param.replace(".function.parameters", ".input_schema").replace(".function", "")
    elif head in ("tool_choice", "messages"):  # the shapes differ below the top
        fixed = head
    else:
        fixed = _RENAMED.get(head, head) + ("." + rest if rest else "")
    if fixed == param:
        return exc
    message = exc.message.replace(f"'{param}'", f"'{fixed}'")
    for chat, ours in _RENAMED.items():
        message = message.replace(f"'{chat}'", f"'{ours}'")
    return RequestError(message, param=fixed or None)


# -- the answer --------------------------------------------------------------------------


STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: str) -> str:
    """A chat finish reason as Messages names it (``end_turn`` for anything else)."""
    return STOP_REASONS.get(finish, "end_turn")


def stop_fields(call: MessagesCall, completion: Completion) -> dict[str, Any]:
    """``stop_reason`` and ``stop_sequence``: ``stop_sequence`` and the one met when the
    member says one of the request's ``stop_sequences`` ended the answer (chat's finish
    reason is ``stop`` either way)."""
    met = completion.stop_sequence
    if met is not None and completion.finish_reason == "stop" and met in call.request.stop:
        return {"stop_reason": "stop_sequence", "stop_sequence": met}
    return {"stop_reason": stop_reason(completion.finish_reason), "stop_sequence": None}


def message_body(call: MessagesCall, answer: Answer) -> dict[str, Any]:
    """The ``message``: the answer's text as a text block, each tool call as a
    ``tool_use`` block (its arguments parsed to ``input``); the ``pinfactory`` block."""
    completion = answer.completion
    content: list[dict[str, Any]] = []
    if completion.text:
        content.append({"type": "text", "text": completion.text})
    if completion.choices:
        for tool_call in completion.choices[0].message.tool_calls or ():
            function = getattr(tool_call, "function", None)
            if function is None:
                continue
            content.append(
                {
                    "type": "tool_use",
                    "id": tool_call.id,
                    "name": function.name,
                    "input": tool_input(function.arguments),
                }
            )
    return {
        "id": call.message_id,
        "type": "message",
        "role": "assistant",
        "model": answer.decision.member,
        "content": content,
        **stop_fields(call, completion),
        "usage": usage_of(answer),
        "pinfactory": answer.metadata(),
    }


def usage_of(answer: Answer) -> dict[str, int]:
    usage = answer.completion.usage
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the ``input`` object (``{}`` when they are not
    an object: Messages has no place for anything else)."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# -- errors ------------------------------------------------------------------------------

ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def anthropic_error(error: PinfactoryError) -> dict[str, Any]:
    """The error as Messages shapes one: ``{"type": "error", "error": {"type",
    "message"}}``, the type by status (``api_error`` for other 5xx); pinfactory's own
    code and field ride along."""
    kind = ERROR_TYPES.get(error.status)
    if kind is None:
        kind = "api_error" if error.status >= 500 else "invalid_request_error"
    return {
        "type": "error",
        "error": {"type": kind, "message": error.message, "code": error.code, "param": error.param},
    }
