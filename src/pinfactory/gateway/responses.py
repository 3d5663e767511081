"""``POST /v1/responses`` (OpenAI's Responses API) as a translation onto the chat pipeline.

A Responses body is checked against the ``openai.types.responses`` request types (the
fields this gateway serves, :class:`ResponsesBody`), then becomes the chat
:class:`~pinfactory.request.Request` the pipeline routes, calls, verifies and records
like any other:

============================  ===============================================
Responses                     chat
============================  ===============================================
``instructions``              a leading ``system`` message (not carried over)
``input`` string / messages   ``user`` / ``assistant`` / ``system`` messages
``input_text``/``input_image``  ``text`` / ``image_url`` content parts
``function_call`` items       an ``assistant`` message's ``tool_calls``
``function_call_output``      a ``tool`` message with its ``tool_call_id``
``previous_response_id``      the stored conversation of the unit's own response first
``tools`` (function)          ``tools`` (``{"type": "function", "function": ...}``)
``tool_choice``               ``tool_choice``
``text.format``               ``response_format``
``max_output_tokens``         ``max_completion_tokens``
``top_logprobs``              ``logprobs: true`` + ``top_logprobs``
============================  ===============================================

The typed outcome comes back as an ``openai.types.responses.Response``: the answer's
text as an output message, its tool calls as ``function_call`` items. With ``store``
(the default) the conversation so far and the response are kept in the ledger
(:class:`~pinfactory.ledger.base.StoredResponse`), so a later request from the same
unit may continue it by ``previous_response_id``; another unit's id is a 404.
Streaming events are in :mod:`pinfactory.gateway.response_events`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Required, TypedDict

import orjson
from openai.types.chat import ChatCompletionMessageToolCall
from openai.types.responses import (
    EasyInputMessageParam,
    FunctionToolParam,
    Response,
    ResponseFunctionToolCall,
    ResponseFunctionToolCallParam,
    ResponseOutputMessage,
    ResponseOutputMessageParam,
    ResponseOutputText,
    ResponseReasoningItemParam,
    ResponseTextConfigParam,
    ResponseUsage,
)
from openai.types.responses.response_input_item_param import FunctionCallOutput
from openai.types.responses.response_input_item_param import Message as InputMessage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from openai.types.responses.tool_choice_function_param import ToolChoiceFunctionParam
from pydantic import ValidationError

from pinfactory.errors import NotFound, PinfactoryError, RequestError
from pinfactory.gateway.checks import check_values
from pinfactory.gateway.errors import openai_error
from pinfactory.gateway.openai_types import params_adapter
from pinfactory.gateway.schema import field_error, json_body, served_only
from pinfactory.ledger.base import StoredResponse
from pinfactory.outcome import Answer
from pinfactory.request import Message, Request, text_of

InputItem = (
    EasyInputMessageParam
    | InputMessage
    | ResponseOutputMessageParam
    | ResponseFunctionToolCallParam
    | FunctionCallOutput
    | ResponseReasoningItemParam
)


class ResponsesBody(TypedDict, total=False):
    """The Responses request fields this gateway serves, in ``openai.types.responses``'
    own types (a subset of ``ResponseCreateParams``)."""

    model: Required[str]
    input: str | list[InputItem]
    instructions: str | None
    tools: list[FunctionToolParam]
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunctionParam
    parallel_tool_calls: bool | None
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None
    text: ResponseTextConfigParam
    stream: bool | None
    store: bool | None
    previous_response_id: str | None
    metadata: dict[str, str] | None
    user: str
    top_logprobs: int | None


SERVED = frozenset(ResponsesBody.__annotations__)
_ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
_RENAMED = {  # chat parameter -> the Responses field it came from (for error messages)
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "logprobs": "top_logprobs",
}


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """A parsed Responses request: the chat request to run and what the response echoes."""

    request: Request
    body: Mapping[str, Any]
    response_id: str
    history: tuple[Mapping[str, Any], ...] = ()
    """The chat messages of the previous response's conversation (none without one)."""
    given: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    """This request's input, as chat messages (what is stored with the answer)."""

    @property
    def store(self) -> bool:
        return self.body.get("store") is not False


def check_body(body: bytes) -> dict[str, Any]:
    """The body as JSON, checked: only the fields served, each of its type; else a 400
    naming the field (an input item or tool of a type not served names its ``type``)."""
    data = json_body(body)
    served_only(data, SERVED, "/v1/responses")
    given = data.get("input")
    if isinstance(given, list):
        # output items sent back as the SDK dumps them carry nulls for absent fields
        data["input"] = given = [_without_nulls(item) for item in given]
        for index, item in enumerate(given):
            kind = item.get("type", "message") if isinstance(item, dict) else "message"
            if kind not in _ITEM_TYPES:
                raise RequestError(
                    f"'input.{index}.type' must be one of {', '.join(_ITEM_TYPES)} (got {kind!r})",
                    param=f"input.{index}.type",
                )
    for index, tool in enumerate(data.get("tools") or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise RequestError(
                f"'tools.{index}.type' must be 'function': this gateway serves function "
                f"tools only (got {kind!r})",
                param=f"tools.{index}.type",
            )
    checked = _with_api_defaults(data)
    try:
        params_adapter(ResponsesBody).validate_python(checked, strict=True)
    except ValidationError as exc:
        raise field_error(exc, checked) from exc
    if "input" not in data:
        raise RequestError("'input' is required: a string or a list of items", param="input")
    return data


def _with_api_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` to validate, with the fields the ``openai`` types mark required
    but the API treats as optional filled with the API's defaults: a function tool's
    ``strict`` and ``parameters`` (``Required[Optional[...]]``: absent reads as null), an
    ``input_image``'s ``detail`` (``auto``), and an assistant message sent back by hand:
    its ``id``, ``status`` and its ``output_text`` parts' ``annotations``. What is
    forwarded is the body as sent; the copy only decides what is valid."""
    checked = dict(data)
    tools = data.get("tools")
    if isinstance(tools, list):
        checked["tools"] = [
            {"strict": None, "parameters": None, **t} if isinstance(t, dict) else t for t in tools
        ]
    items = data.get("input")
    if isinstance(items, list):
        checked["input"] = [_item_with_defaults(item) for item in items]
    return checked


def _item_with_defaults(item: object) -> object:
    if not isinstance(item, dict) or item.get("type", "message") != "message":
        return item
    content = item.get("content")
    if not isinstance(content, list):
        return item
    parts = [_part_with_defaults(part) if isinstance(part, dict) else part for part in content]
    filled = {**item, "content": parts}
    if item.get("role") == "assistant" and any(
        isinstance(p, dict) and p.get("type") == "output_text" for p in parts
    ):  # an output message: the SDK's type wants what the API would fill in
        filled = {"id": "msg_given", "status": "completed", **filled, "type": "message"}
    return filled


def _part_with_defaults(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "input_image":
        return {"detail": "auto", **part}
    if kind == "output_text":
        return {"annotations": [], **part}
    return part


def _without_nulls(item: object) -> object:
    if not isinstance(item, dict):
        return item
    kept = {k: v for k, v in item.items() if v is not None}
    if isinstance(kept.get("content"), list):
        kept["content"] = [_without_nulls(part) for part in kept["content"]]
    return kept


def to_call(
    data: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    *,
    unit: str,
    user: str,
    headers: dict[str, str],
    request_id: str,
    correlation_id: str | None = None,
) -> ResponsesCall:
    """The chat request for a checked Responses body, after ``history`` (a stored
    conversation); a 400 naming the Responses field for a value chat refuses."""
    given = tuple(_messages(data["input"]))
    wire: list[Mapping[str, Any]] = []
    if data.get("instructions"):
        wire.append({"role": "system", "content": data["instructions"]})
    wire += [*history, *given]
    if not any(_says_something(m) for m in wire):
        raise RequestError(
            "'input' needs at least one item with content (text, an image or a tool call)",
            param="input",
        )
    params = _chat_params(data)
    try:
        check_values(params)
    except RequestError as exc:
        raise _renamed(exc) from exc
    messages = tuple(Message(m["role"], text_of(m.get("content")), m) for m in wire)
    request = Request(
        messages=messages,
        model=data["model"],
        temperature=data.get("temperature"),
        max_tokens=data.get("max_output_tokens"),
        stream=bool(data.get("stream")),
        tools=tuple(params.get("tools") or ()),
        params=params,
        unit=unit,
        user=user or data.get("user") or "",
        tags=tuple(sorted(t for t in (data.get("metadata") or {}).get("tags", "").split(",") if t)),
        headers=headers,
        request_id=request_id,
        correlation_id=correlation_id,
    )
    return ResponsesCall(
        request, data, "resp_" + request_id.removeprefix("req_"), tuple(history), given
    )


def _says_something(message: Mapping[str, Any]) -> bool:
    """Text, a content part that is not text (an image), or tool calls."""
    content = message.get("content")
    if isinstance(content, list) and any(p.get("type") != "text" for p in content):
        return True
    return bool(text_of(content) or message.get("tool_calls"))


def _messages(given: str | list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Responses input items as chat messages (function calls in a row make one
    assistant message with their tool calls; reasoning items carry nothing to send)."""
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    out: list[Mapping[str, Any]] = []
    for index, item in enumerate(given):
        kind = item.get("type", "message")
        if kind == "function_call_output" and not isinstance(item.get("call_id"), str):
            raise RequestError(
                f"'input.{index}.call_id' is required: the id of the function call this "
                "output answers",
                param=f"input.{index}.call_id",
            )
        if kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = out[-1] if out else None
            if last is not None and last.get("role") == "assistant" and last.get("tool_calls"):
                out[-1] = {**last, "tool_calls": [*last["tool_calls"], call]}
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            content = output if isinstance(output, str) else _parts(output)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
        elif kind == "message":
            content = item["content"]
            if not isinstance(content, str):
                content = _parts(content)
                if item["role"] == "assistant":  # output_text parts: the text
                    content = text_of(content)
            out.append({"role": item["role"], "content": content})
    return out


def _parts(parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = []
    for index, part in enumerate(parts):
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            converted.append({"type": "text", "text": part["text"]})
        elif kind in ("input_image", "image") and part.get("image_url"):
            image = {"url": part["image_url"]}
            if part.get("detail"):
                image["detail"] = part["detail"]
            converted.append({"type": "image_url", "image_url": image})
        else:
            raise RequestError(
                f"content part {index} of type {kind!r} is not served; "
                "allowed: input_text, input_image (by image_url)",
                param="input",
            )
    return converted


def _chat_params(data: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in ("temperature", "top_p", "parallel_tool_calls", "metadata", "user"):
        if data.get(name) is not None:
            params[name] = data[name]
    if data.get("max_output_tokens") is not None:
        params["max_completion_tokens"] = data["max_output_tokens"]
    if data.get("top_logprobs") is not None:
        params["logprobs"] = True
        params["top_logprobs"] = data["top_logprobs"]
    tools = data.get("tools")
    if tools:
        params["tools"] = [_chat_tool(tool) for tool in tools]
    choice = data.get("tool_choice")
    if isinstance(choice, str):
        params["tool_choice"] = choice
    elif isinstance(choice, Mapping):
        params["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    text_format = (data.get("text") or {}).get("format")
    if isinstance(text_format, Mapping) and text_format.get("type") == "json_object":
        params["response_format"] = {"type": "json_object"}
    elif isinstance(text_format, Mapping) and text_format.get("type") == "json_schema":
        schema = {k: v for k, v in text_format.items() if k != "type"}
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
    return params


def _chat_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _renamed(exc: RequestError) -> RequestError:
    """A chat check's error, naming the Responses field (``tools.0.function.name`` ->
    ``tools.0.name``, ``response_format`` -> ``text.format``)."""
    param = exc.param or ""
    head, _, rest = param.partition(".")
    if head == "messages":  # instructions and history shift the index: the input as a whole
        fixed = "input"
    elif head in ("tools", "tool_choice"):
        fixed = param.replace(".function.", ".").replace(".function", "")
    elif head == "response_format":
        fixed = "text.format" + rest.removeprefix("json_schema").replace("..", ".")
    else:
        fixed = _RENAMED.get(head, head) + ("." + rest if rest else "")
    message = exc.message.replace(f"'{param}'", f"'{fixed}'")
    for chat, responses in _RENAMED.items():
        message = message.replace(f"'{chat}'", f"'{responses}'")
    renamed = copy.copy(exc)  # its class, so its status and code, kept
    renamed.message, renamed.param = message, fixed or None
    renamed.args = (message,)
    return renamed


def responses_error(error: PinfactoryError) -> dict[str, Any]:
    """``/v1/responses``' error body: OpenAI's shape, a 400 naming the Responses field
    (``text.format``, ``max_output_tokens``, ``input``), not the chat parameter the
    pipeline checked (``response_format``...), wherever in the pipeline it was found."""
    if isinstance(error, RequestError) and error.param:
        error = _renamed(error)
    return openai_error(error)


# -- the answer --------------------------------------------------------------------------


@dataclass(slots=True)
class Output:
    """What an answer said, as Responses output: its text and its tool calls."""

    text: str = ""
    calls: list[ChatCompletionMessageToolCall] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    """The text's tokens with their log probabilities (``top_logprobs`` asked for them):
    chat's ``logprobs.content`` entries, which are the Responses ``Logprob`` shape."""


def output_of(answer: Answer) -> Output:
    """The text and tool calls of the answer's first choice (the pipeline's settled text)."""
    completion = answer.completion
    calls: list[ChatCompletionMessageToolCall] = []
    logprobs: list[dict[str, Any]] = []
    if completion.choices:
        first = completion.choices[0]
        for call in first.message.tool_calls or ():
            if isinstance(call, ChatCompletionMessageToolCall):
                calls.append(call)
        if first.logprobs is not None and first.logprobs.content:
            logprobs = [token.model_dump(mode="json") for token in first.logprobs.content]
    return Output(completion.text, calls, logprobs)


def response_of(
    call: ResponsesCall, answer: Answer, output: Output, *, status: str | None = None
) -> Response:
    """The ``Response`` for an answer: the output message (when there is text) and one
    ``function_call`` item per tool call; ``incomplete`` when the cap cut it."""
    suffix = call.response_id.removeprefix("resp_")
    items: list[Any] = []
    if output.text or not output.calls:
        items.append(message_item(suffix, output.text, "completed", output.logprobs))
    items += [function_item(suffix, i, c, "completed") for i, c in enumerate(output.calls)]
    cut = answer.completion.finish_reason == "length"
    return response_shell(
        call,
        answer.decision.member,
        status or ("incomplete" if cut else "completed"),
        items,
        usage_of(answer),
    )


def usage_of(answer: Answer) -> ResponseUsage:
    """The answering call's tokens, as Responses reports them."""
    usage = answer.completion.usage
    return ResponseUsage(
        input_tokens=usage.input_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens=usage.output_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        total_tokens=usage.total_tokens,
    )


def response_shell(
    call: ResponsesCall,
    model: str,
    status: str,
    output: list[Any],
    usage: ResponseUsage | None = None,
) -> Response:
    """A ``Response`` echoing the request's settings, with this status and output."""
    body = call.body
    text_format = (body.get("text") or {}).get("format") or {"type": "text"}
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return Response.model_validate(
        {
            "id": call.response_id,
            "object": "response",
            "created_at": time.time(),
            "status": status,
            "model": model,
            "output": output,
            "instructions": body.get("instructions"),
            "previous_response_id": body.get("previous_response_id"),
            "tools": body.get("tools") or [],
            "tool_choice": body.get("tool_choice") or "auto",
            "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {},
            "text": {"format": text_format},
            "store": call.store,
            "usage": usage,
            "error": None,
            "incomplete_details": incomplete,
        }
    )


def message_item(
    suffix: str, text: str, status: str, logprobs: Sequence[Mapping[str, Any]] = ()
) -> ResponseOutputMessage:
    return ResponseOutputMessage.model_validate(
        {
            "id": "msg_" + suffix,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [text_part(text, logprobs)] if status == "completed" else [],
        }
    )


def text_part(text: str, logprobs: Sequence[Mapping[str, Any]] = ()) -> ResponseOutputText:
    return ResponseOutputText.model_validate(
        {"type": "output_text", "text": text, "annotations": [], "logprobs": list(logprobs)}
    )


def function_item(
    suffix: str, index: int, call: ChatCompletionMessageToolCall, status: str
) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"fc_{suffix}_{index}",
        type="function_call",
        call_id=call.id,
        name=call.function.name,
        arguments=call.function.arguments if status == "completed" else "",
        status=status,  # type: ignore[arg-type]
    )


def response_json(response: Response, answer: Answer | None) -> dict[str, Any]:
    """The response as the client gets it, with the ``pinfactory`` block."""
    body = response.model_dump(mode="json", exclude_none=False)
    if answer is not None:
        body["pinfactory"] = answer.metadata()
    return body


def stored(call: ResponsesCall, output: Output, body: dict[str, Any]) -> StoredResponse:
    """What the ledger keeps: the conversation so far (history, this input, the answer as
    an assistant message) and the response body."""
    said: dict[str, Any] = {"role": "assistant", "content": output.text or None}
    if output.calls:
        said["tool_calls"] = [c.model_dump(mode="json") for c in output.calls]
    conversation = [*call.history, *call.given, said]
    return StoredResponse(
        id=call.response_id,
        request_id=call.request.request_id,
        unit=call.request.unit,
        created=time.time(),
        body=orjson.dumps({"messages": conversation, "response": body}).decode(),
    )


def lookup_id(response_id: str) -> bool:
    """Whether ``response_id`` could name a stored response (one of ours: ``resp_`` and
    printable, which every ledger can be asked for)."""
    return response_id.startswith("resp_") and response_id.isprintable() and len(response_id) < 256


def visible(
    found: StoredResponse | None,
    unit: str,
    response_id: str,
    param: str | None = "previous_response_id",
) -> StoredResponse:
    """The stored response if it is the unit's own; else a 404 naming ``param`` (the
    body's ``previous_response_id``; none for ``GET /v1/responses/{id}``, whose id is in
    the path). Another unit's id reads as unknown, so ids reveal nothing."""
    if found is None or found.unit != unit:
        raise NotFound(
            f"no response with id '{response_id}' (responses are kept only with store, "
            "for the unit that made them)",
            param=param,
        )
    return found


def conversation(found: StoredResponse) -> tuple[Mapping[str, Any], ...]:
    return tuple(orjson.loads(found.body)["messages"])
