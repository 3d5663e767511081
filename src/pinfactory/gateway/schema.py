"""The OpenAI chat-completions wire format: request parsing, response bodies.

Pure functions over data; the app does the HTTP. Bodies are parsed with
orjson; a body in the common shape (plain string messages and the usual
sampling fields, all well typed) is read directly, anything else goes through
the pydantic model, which gives every error its message.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from pinfactory.errors import RequestError
from pinfactory.outcome import Answer
from pinfactory.request import Document, Message, Request


class TextPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: StrictStr | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class WireDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(min_length=1)
    title: StrictStr = ""


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """What ``POST /v1/chat/completions`` accepts. Unknown OpenAI fields are ignored."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr = "auto"
    messages: list[WireMessage] = Field(min_length=1)
    temperature: StrictFloat | StrictInt | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, gt=0)
    max_completion_tokens: StrictInt | None = Field(default=None, gt=0)
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None
    documents: list[WireDocument] = Field(
        default=[], description="pinfactory: passages to ground on"
    )
    tools: list[dict[str, Any]] = []
    metadata: dict[str, StrictStr] | None = None


def parse_request(
    body: bytes, *, unit: str, user: str, headers: dict[str, str], request_id: str
) -> tuple[Request, bool]:
    """Parse and validate a request body; errors name the field and what is allowed.

    Returns the request and whether a stream should end with a usage chunk.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object")
    common = _common_shape(data)
    if common is not None:
        messages, text = common
        if not text:
            raise RequestError(
                "'messages' needs at least one non-empty user message", param="messages"
            )
        stop = data.get("stop")
        temperature = data.get("temperature")
        request = Request(
            messages=messages,
            model=data.get("model", "auto"),
            temperature=float(temperature) if temperature is not None else None,
            max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
            stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
            stream=data.get("stream", False),
            unit=unit,
            user=user or (data.get("user") or ""),
            headers=headers,
            request_id=request_id,
        )
        return request, False
    try:
        wire = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise _field_error(exc) from exc
    if not any(m.text() for m in wire.messages if m.role == "user"):
        raise RequestError("'messages' needs at least one non-empty user message", param="messages")
    stop = (wire.stop,) if isinstance(wire.stop, str) else tuple(wire.stop or ())
    tags = tuple(sorted((wire.metadata or {}).get("tags", "").split(","))) if wire.metadata else ()
    request = Request(
        messages=tuple(Message(m.role, m.text()) for m in wire.messages),
        model=wire.model,
        temperature=float(wire.temperature) if wire.temperature is not None else None,
        max_tokens=wire.max_completion_tokens or wire.max_tokens,
        stop=stop,
        stream=wire.stream,
        documents=tuple(Document(d.text, d.title) for d in wire.documents),
        tools=tuple(wire.tools),
        unit=unit,
        user=user or (wire.user or ""),
        tags=tuple(t for t in tags if t),
        headers=headers,
        request_id=request_id,
    )
    include_usage = bool(wire.stream_options and wire.stream_options.include_usage)
    return request, include_usage


_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
_COMMON_FIELDS = frozenset(
    {"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "stop"}
    | {"stream", "user"}
)
_MESSAGE_FIELDS = frozenset({"role", "content"})


def _common_shape(data: dict[str, Any]) -> tuple[tuple[Message, ...], bool] | None:
    """The messages and whether a user said something, if ``data`` is a valid request in
    the common shape; None sends it to the pydantic model (the same rules, every message)."""
    if not _COMMON_FIELDS.issuperset(data):
        return None
    model, messages = data.get("model", "auto"), data.get("messages")
    if type(model) is not str or type(messages) is not list or not messages:
        return None
    parsed, said = [], False
    for message in messages:
        if type(message) is not dict or not _MESSAGE_FIELDS.issuperset(message):
            return None
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES or (content is not None and type(content) is not str):
            return None
        text = content or ""
        said = said or (role == "user" and bool(text))
        parsed.append(Message(role, text))
    temperature = data.get("temperature")
    if temperature is not None and (
        type(temperature) not in (int, float) or not 0 <= temperature <= 2
    ):
        return None
    for key in ("max_tokens", "max_completion_tokens"):
        value = data.get(key)
        if value is not None and (type(value) is not int or value <= 0):
            return None
    stop, user = data.get("stop"), data.get("user")
    if stop is not None and type(stop) is not str and not _strings(stop):
        return None
    if type(data.get("stream", False)) is not bool or (user is not None and type(user) is not str):
        return None
    return tuple(parsed), said


def _strings(value: object) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _field_error(exc: ValidationError) -> RequestError:
    error = exc.errors()[0]
    loc = error["loc"]
    field = ".".join(str(p) for p in loc if not _is_type_tag(p))
    kind = error["type"]
    if kind == "missing":
        message = f"'{field}' is required"
    elif kind in ("too_short", "list_type") and field == "messages":
        message = "'messages' must be a non-empty list of {role, content} objects"
    else:
        message = f"'{field}': {error['msg']}"
        if "input" in error and not isinstance(error["input"], dict | list):
            message += f" (got {error['input']!r})"
    return RequestError(message, param=field or None)


def _is_type_tag(part: object) -> bool:
    """Pydantic puts union member names ('str', 'list[TextPart]') into error locations."""
    text = str(part)
    return text in _TYPE_TAGS or "[" in text or text.startswith("function-")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


def completion_body(answer: Answer) -> dict[str, Any]:
    usage = answer.completion.usage
    return {
        "id": answer.request.completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.decision.member,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.completion.text},
                "finish_reason": _finish(answer.completion.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
        "pinfactory": answer.metadata(),
    }


def chunk_body(
    request: Request, member: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": request.completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": member,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }


def final_chunk(answer: Answer, include_usage: bool) -> dict[str, Any]:
    """The last chunk: finish reason, the ``pinfactory`` block and, if asked, usage."""
    extra: dict[str, Any] = {"pinfactory": answer.metadata()}
    if include_usage:
        u = answer.completion.usage
        extra["usage"] = {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
        }
    return chunk_body(
        answer.request,
        answer.decision.member,
        {},
        _finish(answer.completion.finish_reason),
        **extra,
    )


def error_body(message: str, *, type_: str, code: str, param: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _finish(reason: str) -> str:
    return reason if reason in ("stop", "length", "tool_calls", "content_filter") else "stop"
