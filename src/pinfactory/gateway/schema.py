"""The OpenAI chat-completions wire format: request parsing, response bodies.

Pure functions over data; the app does the HTTP. Bodies are parsed with
orjson; a body in the common shape (plain string messages and the usual
sampling fields, all well typed) is read directly, anything else goes through
the pydantic model, which gives every error its message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import BaseModel, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError

from pinfactory.errors import PinfactoryError, RequestError
from pinfactory.gateway.checks import check_values
from pinfactory.gateway.openai_types import field_names, request_adapter
from pinfactory.gateway.sse import frame
from pinfactory.members.base import Completion, Delta
from pinfactory.outcome import Answer
from pinfactory.request import Document, Message, Request, text_of


class WireDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(min_length=1)
    title: StrictStr = ""


_DOCUMENTS: TypeAdapter[list[WireDocument]] = TypeAdapter(list[WireDocument])
_OWN = frozenset({"model", "messages", "stream", "documents", "cache"})
"""Body fields the gateway consumes; every other one is forwarded in ``Request.params``."""


def parse_request(
    body: bytes,
    *,
    unit: str,
    user: str,
    headers: dict[str, str],
    request_id: str,
    correlation_id: str | None = None,
) -> tuple[Request, bool]:
    """Parse and validate a request body; errors name the field and what is allowed.

    The body is checked against ``openai.types.chat``'s own request type
    (:mod:`pinfactory.gateway.openai_types`) and OpenAI's value rules
    (:mod:`pinfactory.gateway.checks`); a body in the common shape (plain string
    messages and the usual sampling fields, all well typed) is read directly.
    Returns the request and whether a stream should end with a usage chunk.
    """
    data = json_body(body)
    return request_of(
        data,
        unit=unit,
        user=user,
        headers=headers,
        request_id=request_id,
        correlation_id=correlation_id,
    )


def request_of(
    data: dict[str, Any],
    *,
    unit: str,
    user: str,
    headers: dict[str, str],
    request_id: str,
    correlation_id: str | None = None,
) -> tuple[Request, bool]:
    """:func:`parse_request` for a body already read as JSON (one naming ``model``):
    what the other endpoints (``/v1/completions``, ``/v1/messages``) call with the chat
    body they translate theirs into."""
    common = _common_shape(data)
    messages = _validate(data) if common is None else common
    if not any(m.content or (m.wire is not None and _says_something(m.wire)) for m in messages):
        raise RequestError("'messages' needs at least one message with content", param="messages")
    stop = data.get("stop")
    temperature = data.get("temperature")
    metadata = data.get("metadata") or {}
    tags = sorted(t for t in metadata.get("tags", "").split(",") if t)
    stream_options = data.get("stream_options") or {}
    cache = data.get("cache", True)
    if type(cache) is not bool:
        raise RequestError(
            f"'cache' must be true or false (false: no cached answer, none stored); got {cache!r}",
            param="cache",
        )
    request = Request(
        messages=messages,
        model=data["model"],
        temperature=float(temperature) if temperature is not None else None,
        max_tokens=data.get("max_completion_tokens") or data.get("max_tokens"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        stream=bool(data.get("stream")),
        documents=_documents(data["documents"]) if "documents" in data else (),
        tools=tuple(data.get("tools") or ()),
        params={k: v for k, v in data.items() if k not in _OWN},
        extra_params=() if common is not None else _extra_params(data),
        unit=unit,
        user=user or (data.get("user") or ""),
        tags=tuple(tags),
        headers=headers,
        request_id=request_id,
        cache=cache,
        correlation_id=correlation_id,
    )
    return request, bool(request.stream and stream_options.get("include_usage"))


_MODEL = "a member's name, or 'auto' to let the team route"


def _extra_params(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The body's fields that OpenAI's Chat Completions does not define and pinfactory
    does not consume (a provider's own, like ``top_k``), in the order sent."""
    known = field_names(CompletionCreateParamsNonStreaming)
    return tuple(k for k in data if k not in known and k not in _OWN)


def json_body(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object whose ``model`` is a non-empty string; else a 400
    saying so (invalid UTF-8 named by its first bad byte and where it is)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(_json_problem(body, exc)) from exc
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object")
    model = data.get("model", ...)
    if type(model) is not str or not model:
        if model is ...:
            problem = "is required"
        elif type(model) is str:
            problem = "must not be empty"
        else:
            problem = "must be a string"
        got = "" if model is ... or type(model) is str else f" (got {model!r})"
        raise RequestError(f"'model' {problem}: {_MODEL}{got}", param="model")
    return data


def _json_problem(body: bytes, exc: orjson.JSONDecodeError) -> str:
    """What is wrong with a body orjson refused: bytes that are not UTF-8 said as such
    (orjson reports them through its codec's internals), else orjson's own message."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return (
            f"request body is not valid UTF-8 (byte 0x{body[bad.start]:02x} at offset "
            f"{bad.start}): send JSON as UTF-8 text, as is or gzipped with "
            "'Content-Encoding: gzip'"
        )
    return f"request body is not valid JSON: {exc}"


def served_only(data: Mapping[str, Any], served: frozenset[str], endpoint: str) -> None:
    """A 400 naming the first field of ``data`` (other than a null) that ``endpoint``
    does not serve, and listing those it does."""
    for name, value in data.items():
        if name not in served and value is not None:
            raise RequestError(
                f"'{name}' is not served by this gateway's {endpoint}; "
                f"supported: {', '.join(sorted(served))}",
                param=name,
            )


def _validate(data: dict[str, Any]) -> tuple[Message, ...]:
    """The messages of a body in any shape, after the full type and value checks."""
    messages = data.get("messages")
    if "messages" not in data:
        raise RequestError("'messages' is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            "'messages' must be a non-empty list of {role, content} objects", param="messages"
        )
    tools = data.get("tools")
    key = orjson.dumps(tools) if type(tools) is list and tools else None
    names = _KNOWN_TOOLS.get(key) if key is not None else None
    try:  # tools that passed before are not checked again: the rest of the body is
        checked = data if names is None else {k: v for k, v in data.items() if k != "tools"}
        request_adapter().validate_python(checked, strict=True)
    except ValidationError as exc:
        raise field_error(exc, data) from exc
    offered = check_values(data, names)
    if key is not None and names is None:
        _known(key, offered)
    return tuple(Message(m["role"], text_of(m.get("content")), m) for m in messages)


_KNOWN_TOOLS: dict[bytes, list[str]] = {}
"""Tool lists that passed every check (their JSON as sent -> their names): clients send
the same tools request after request, and checking them is most of a tool body's cost."""
_KNOWN_TOOLS_MAX = 256


def _known(key: bytes, names: list[str]) -> None:
    if len(_KNOWN_TOOLS) >= _KNOWN_TOOLS_MAX:
        del _KNOWN_TOOLS[next(iter(_KNOWN_TOOLS))]  # the oldest
    _KNOWN_TOOLS[key] = names


def _documents(raw: object) -> tuple[Document, ...]:
    """The body's ``documents`` (present, even as null), checked; a 400 naming the field."""
    try:
        checked = _DOCUMENTS.validate_python(raw)
    except ValidationError as exc:
        raise field_error(exc, raw, prefix=("documents",)) from exc
    return tuple(Document(d.text, d.title) for d in checked)


def _says_something(message: Mapping[str, Any]) -> bool:
    """Whether a message has more than text: tool calls, or non-text content parts."""
    return bool(message.get("tool_calls")) or (
        isinstance(message.get("content"), list)
        and any(part.get("type") != "text" for part in message["content"])
    )


_ROLES = frozenset({"system", "user", "assistant", "developer"})  # a tool message needs its id
_COMMON_FIELDS = frozenset(
    {"model", "messages", "temperature", "max_tokens", "max_completion_tokens", "stop"}
    | {"stream", "stream_options", "user"}
)
_MESSAGE_FIELDS = frozenset({"role", "content"})


def _common_shape(data: dict[str, Any]) -> tuple[Message, ...] | None:
    """The messages, if ``data`` is a valid request in the common shape (a stream may ask
    for ``include_usage``); None sends it through the full checks (the same rules, every
    message)."""
    if not _COMMON_FIELDS.issuperset(data):
        return None
    model, messages = data.get("model"), data.get("messages")
    if type(model) is not str or type(messages) is not list or not messages:
        return None
    parsed = []
    for message in messages:
        if type(message) is not dict or not _MESSAGE_FIELDS.issuperset(message):
            return None
        role, content = message.get("role"), message.get("content")
        if isinstance(role, list | dict):  # unhashable: the pydantic model names the field
            return None
        if role not in _ROLES or type(content) is not str:
            return None
        parsed.append(Message(role, content, message))
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
    if stop is not None and not (stop if type(stop) is str else _stops(stop)):
        return None
    if type(data.get("stream", False)) is not bool or (user is not None and type(user) is not str):
        return None
    options = data.get("stream_options")
    if options is not None and not (
        data.get("stream") is True
        and type(options) is dict
        and options.keys() <= {"include_usage"}
        and type(options.get("include_usage", False)) is bool
    ):
        return None
    return tuple(parsed)


def _stops(value: object) -> bool:
    """1 to 4 non-empty strings, as ``checks`` wants a ``stop`` list."""
    return type(value) is list and 0 < len(value) <= 4 and all(type(s) is str and s for s in value)


def field_error(exc: ValidationError, data: object, prefix: tuple[str, ...] = ()) -> RequestError:
    """The one error a client most needs from a failed validation of ``data``, naming the
    field.

    A value that fits no variant of a union fails once per variant; the one the client
    meant is the variant of the value's own kind (a string, a list, an object) that
    failed least, not on its tag, and deepest.
    """
    error = _likeliest(exc.errors(), data)
    loc = (*prefix, *_clean(error, data))
    kind = error["type"]
    if kind == "union_tag_invalid":
        tag = str(error["ctx"]["discriminator"]).strip("'")
        loc = (*loc, tag)
        field = ".".join(str(p) for p in loc)
        message = (
            f"'{field}' must be one of {error['ctx']['expected_tags']} "
            f"(got {error['ctx']['tag']!r})"
        )
        return RequestError(message, param=field)
    field = ".".join(str(p) for p in loc)
    if kind == "missing":
        message = f"'{field}' is required"
    elif kind in ("too_short", "list_type") and field == "messages":
        message = "'messages' must be a non-empty list of {role, content} objects"
    else:
        said = error["msg"]  # pydantic lists a Literal's every value: a long one is cut
        message = f"'{field}': {said if len(said) <= 200 else said[:197] + '...'}"
        if "input" in error and not isinstance(error["input"], dict | list):
            message += f" (got {error['input']!r})"
    return RequestError(message, param=field or None)


def _likeliest(errors: list[Any], data: object) -> Any:
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for error in errors:
        groups.setdefault(_variant(error, data), []).append(error)

    def fit(item: tuple[tuple[Any, ...], list[Any]]) -> tuple[bool, bool, int, int]:
        prefix, group = item
        wrong_kind = any(
            e["type"].endswith("_type") and len(e["loc"]) <= len(prefix) for e in group
        )
        literal = any(e["type"] == "literal_error" for e in group)
        return wrong_kind, literal, len(group), -max(len(e["loc"]) for e in group)

    group = min(groups.items(), key=fit)[1]
    # within the variant, a wrong tag ('type') explains the other errors
    return next((e for e in group if e["type"] == "literal_error"), group[0])


def _labels(error: Any, data: object) -> list[bool]:
    """For each part of the error's location: whether it is pydantic's union label (a
    variant's name or tag) rather than a key or index of ``data``."""
    node, labels = data, []
    loc = error["loc"]
    for index, part in enumerate(loc):
        in_list = isinstance(part, int) and isinstance(node, list) and part < len(node)
        in_dict = isinstance(node, dict) and part in node and not _is_type_label(part)
        if in_list or in_dict:
            node, label = node[part], False  # type: ignore[index]
        else:  # not in the data: a label, unless it names the missing field itself
            label = not (index == len(loc) - 1 and error["type"] == "missing")
        labels.append(label)
    return labels


def _clean(error: Any, data: object) -> tuple[Any, ...]:
    """The location without pydantic's union labels."""
    return tuple(
        p for p, label in zip(error["loc"], _labels(error, data), strict=True) if not label
    )


def _variant(error: Any, data: object) -> tuple[Any, ...]:
    """The location up to the innermost union variant the error belongs to."""
    labels = _labels(error, data)
    cut = max((i for i, label in enumerate(labels) if label), default=len(labels))
    return tuple(error["loc"][: cut + 1])


def _is_type_label(part: object) -> bool:
    """'str', 'list[...]', 'literal[...]', a TypedDict's class name."""
    text = str(part)
    return text in _TYPE_TAGS or "[" in text or text[:1].isupper() or text.startswith("function-")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


def completion_body(answer: Answer) -> dict[str, Any]:
    """The ``chat.completion`` body: every choice and usage detail the member gave,
    the first choice's text as the pipeline settled it, and the ``pinfactory`` block."""
    completion = answer.completion
    body: dict[str, Any] = {
        "id": answer.request.completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.decision.member,
        "choices": _choices(completion),
        "usage": usage_body(completion),
    }
    if completion.system_fingerprint is not None:
        body["system_fingerprint"] = completion.system_fingerprint
    if completion.service_tier is not None:
        body["service_tier"] = completion.service_tier
    body["pinfactory"] = answer.metadata()
    return body


def _choices(completion: Completion) -> list[dict[str, Any]]:
    if not completion.choices:
        return [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": finish_reason(completion.finish_reason),
                "logprobs": None,
            }
        ]
    choices = []
    for choice in completion.choices:
        body = dumped(choice)
        body.setdefault("logprobs", None)
        choices.append(body)
    first = choices[0]["message"]
    if (first.get("content") or "") != completion.text:  # verification rewrote it
        first["content"] = completion.text
    return choices


def dumped(model: BaseModel) -> dict[str, Any]:
    """``model.model_dump(mode="json", exclude_unset=True)``: what the member sent, as JSON
    data. The serializer is called directly (the same call ``model_dump`` makes, less its
    keyword plumbing): it runs for every choice of every answer."""
    return model.__pydantic_serializer__.to_python(model, mode="json", exclude_unset=True)  # type: ignore[no-any-return]


def usage_body(completion: Completion) -> dict[str, Any]:
    """The usage block: the member's own (with its token details) when it sent one."""
    if completion.reported_usage is not None:
        return dumped(completion.reported_usage)
    usage = completion.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
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


class ChunkWriter:
    """Turns the pipeline's stream events into ``chat.completion.chunk`` frames.

    Text deltas become content chunks; a member's relayed chunks (:class:`Delta`:
    tool-call deltas, logprobs, several choices) pass through chunk for chunk under
    the gateway's id and the member's name. Chunks that finish a choice are held
    until the answer is recorded. With ``include_usage``, as the reference does it:
    ``"usage": null`` on every chunk, then one last chunk with ``"choices": []`` and the
    usage. The last chunk also carries the ``pinfactory`` block.
    """

    ended = b"data: [DONE]\n\n"

    def __init__(self, request: Request, member: str, include_usage: bool) -> None:
        self.request = request
        self.member = member
        self.include_usage = include_usage
        self.completion_id = request.completion_id
        self._held: list[Delta] = []
        self._extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def opening(self, first: object) -> list[bytes]:
        """The role chunk, unless the member relays its own chunks (which carry it)."""
        if isinstance(first, Delta):
            return []
        return [
            frame(
                chunk_body(
                    self.request, self.member, {"role": "assistant", "content": ""}, **self._extra
                )
            )
        ]

    def write(self, event: object) -> list[bytes]:
        if isinstance(event, str):
            return [frame(chunk_body(self.request, self.member, {"content": event}, **self._extra))]
        if isinstance(event, Delta):
            if event.finish:
                self._held.append(event)
                return []
            return [frame(self._relayed(event))]
        return []

    def _relayed(self, delta: Delta) -> dict[str, Any]:
        """The chunk as the upstream sent it (its JSON, when relayed from one: every
        field kept, none re-serialised by pydantic), under the gateway's id and the
        member's name; ``usage`` null until the usage chunk when the client asked for
        it, else absent."""
        body = dict(delta.body)  # the member's stays as the upstream sent it
        body["id"] = self.completion_id
        body["model"] = self.member
        if self.include_usage:
            body["usage"] = None
        else:
            body.pop("usage", None)
        return body

    async def close(self, answer: Answer) -> list[bytes]:
        if self._held:
            bodies = [self._relayed(delta) for delta in self._held]
        else:
            finish = finish_reason(answer.completion.finish_reason)
            bodies = [chunk_body(self.request, self.member, {}, finish, **self._extra)]
        if self.include_usage:
            last = chunk_body(self.request, self.member, {}, usage=usage_body(answer.completion))
            last["choices"] = []
            bodies.append(last)
        bodies[-1]["pinfactory"] = answer.metadata()
        return [frame(body) for body in bodies]

    def failed(self, exc: PinfactoryError) -> bytes:
        return frame(error_body(exc.message, type_=exc.type, code=exc.code, param=exc.param))


def error_body(message: str, *, type_: str, code: str, param: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def finish_reason(reason: str) -> str:
    """A member's finish reason as the reference names one (anything else: ``stop``)."""
    return reason if reason in ("stop", "length", "tool_calls", "content_filter") else "stop"
