"""A member behind any OpenAI-compatible endpoint.

Translation (request -> payload, response -> completion) is pure and kept
apart from transport: :class:`~pinfactory.members.upstream.Upstream` sends,
times out, retries, breaks the circuit and maps faults to :class:`MemberError`.

The transport: :mod:`pinfactory.members.http1`, a lean keep-alive HTTP/1.1 client over
httptools' C parser (about 75 µs of CPU per call against 280 µs through aiohttp's
ClientSession on this machine), for a whole answer and for a stream alike (a stream's
body is read as it arrives).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson
from openai.types.chat import ChatCompletion
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import CompletionUsage
from pydantic import Field, ValidationError

from pinfactory.errors import MemberError
from pinfactory.members.base import Capabilities, Completion, Delta, Deltas, StreamEvent, Usage
from pinfactory.members.chunks import Chunk, StreamErrorEvent, read_chunk
from pinfactory.members.registry import register
from pinfactory.members.remote import RemoteMember, RemoteSettings
from pinfactory.members.upstream import WholeBody
from pinfactory.request import Request, estimate_tokens, wire_message


class OpenAIHTTPSettings(RemoteSettings):
    default_max_tokens: int | None = Field(default=None, gt=0)
    stream_usage: bool = Field(
        default=False,
        description="ask for a usage chunk on every stream (stream_options) even when the "
        "client did not, so streams are costed from counted tokens; off: a strict "
        "upstream may refuse the field, and token counts are estimated",
    )


def to_payload(
    request: Request,
    model: str,
    *,
    stream: bool,
    default_max_tokens: int | None,
    stream_usage: bool = False,
) -> dict[str, Any]:
    """The upstream body: the client's messages and parameters as it sent them.

    Messages keep their OpenAI shape (content parts, ``tool_calls``, ``tool_call_id``);
    a message whose text the pipeline changed (PII redaction) is sent with that text.
    Every parameter in ``request.params`` goes as is (``max_completion_tokens`` stays
    ``max_completion_tokens``, ``stream_options`` only if the client sent it); a request
    built without a wire body (CLI, lab) sends its ``temperature``/``max_tokens``/``stop``.
    ``stream_usage`` asks for a usage chunk when the client did not (the member's setting).
    """
    params = request.params
    payload: dict[str, Any] = {
        "model": model,
        "messages": [wire_message(m) for m in request.messages],
    }
    if request.temperature is not None and "temperature" not in params:
        payload["temperature"] = request.temperature
    if "max_tokens" not in params and "max_completion_tokens" not in params:
        max_tokens = request.max_tokens or default_max_tokens
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
    if request.stop and "stop" not in params:
        payload["stop"] = list(request.stop)
    payload.update(params)
    if stream:
        payload["stream"] = True
        if stream_usage and "stream_options" not in params:
            payload["stream_options"] = {"include_usage": True}
    return payload


def parse_completion(raw: bytes) -> ChatCompletion:
    """A chat completion body, checked against ``openai.types.chat.ChatCompletion``.

    Raises ``ValueError`` (pydantic's ``ValidationError`` is one) when it is not one.
    """
    try:
        completion = ChatCompletion.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "body"
        raise ValueError(f"not a chat completion: '{field}': {error['msg']}") from exc
    if not completion.choices:
        raise ValueError("response has no choices")
    return completion


def parse_usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()
    return Usage(usage.prompt_tokens, usage.completion_tokens)


class StreamReader:
    """What a stream said so far: the relayed :class:`Delta` of each chunk, and the text,
    usage, model, finish reason and fingerprint the final :class:`Completion` needs."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.usage: CompletionUsage | None = None
        self.model = ""
        self.finish = "stop"
        self.fingerprint: str | None = None
        self.service_tier: str | None = None

    def read(self, chunk: Chunk) -> Delta | None:
        """The chunk to relay (as :func:`read_chunk` gives it), marked ``more`` (the
        stream clears it on the last of a read that did not end it); None for a chunk
        that only reports usage."""
        body = chunk.body
        self.model = body["model"] or self.model
        self.fingerprint = body.get("system_fingerprint") or self.fingerprint
        self.service_tier = body.get("service_tier") or self.service_tier
        if chunk.usage is not None:
            self.usage = chunk.usage
        choices = body["choices"]
        if not choices:
            return None
        text, finish = "", False
        for choice in choices:
            reason = choice.get("finish_reason")
            if reason is not None:
                finish = True
                if choice["index"] == 0:
                    self.finish = reason
            if choice["index"] == 0 and (content := choice["delta"].get("content")):
                text = content
                self.parts.append(text)
        return Delta(body, text, finish, more=True, typed=chunk.typed)


@register
class OpenAIHTTPMember(RemoteMember):
    """Any OpenAI-compatible chat completions endpoint."""

    kind = "openai_http"
    path = "/chat/completions"
    Settings = OpenAIHTTPSettings
    settings: OpenAIHTTPSettings
    capabilities = Capabilities(
        tools=True,
        json_mode=True,
        json_schema=True,
        vision=True,
        n=True,
        logprobs=True,
        extra_params=True,  # a provider's own fields (extra_body) go to the upstream as sent
    )
    times_its_stream = True  # the upstream's first-token, idle and total timeouts
    times_its_calls = True  # each attempt within the first-token timeout, all within the total

    async def complete(self, request: Request) -> Completion:
        raw = await self.upstream.post(orjson.dumps(self._payload(request, stream=False)))
        return self._whole(request, raw)

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        body = orjson.dumps(self._payload(request, stream=True))
        reader = StreamReader()
        async with aclosing(self.upstream.stream(body)) as batches:
            async for batch in batches:
                if isinstance(batch, WholeBody):  # the upstream ignored ``stream``
                    completion = self._whole(request, batch.body)
                    if completion.text:
                        yield completion.text
                    yield completion
                    return
                deltas, failure = self._read_batch(reader, batch.chunks)
                # the chunks that came in one read go on as one event, none held (``more``:
                # the next event is here: with [DONE] in the read, the completion)
                if deltas and failure is None and not batch.ended:
                    deltas[-1].more = False
                if len(deltas) > 1:
                    yield Deltas(deltas, deltas[-1].more)
                elif deltas:
                    yield deltas[0]
                if failure is not None:
                    raise failure
        yield self._completion(
            request,
            "".join(reader.parts),
            reader.usage,
            reader.model,
            reader.finish,
            fingerprint=reader.fingerprint,
            service_tier=reader.service_tier,
        )

    def _read_batch(
        self, reader: StreamReader, batch: list[bytes]
    ) -> tuple[list[Delta], MemberError | None]:
        """The deltas to relay from one read's chunks, up to the first that fails (its
        error, naming the member, returned beside the deltas before it)."""
        deltas: list[Delta] = []
        for data in batch:
            try:
                read = read_chunk(data)
            except ValueError as exc:  # UnicodeDecodeError and pydantic's errors too
                said = (
                    f"upstream stream error: {exc}"
                    if isinstance(exc, StreamErrorEvent)
                    else f"upstream sent a garbled stream: {_first_line(exc)}"
                )
                failure = MemberError(self.name, said)
                failure.__cause__ = exc
                return deltas, failure
            delta = reader.read(read) if read is not None else None
            if delta is not None:
                deltas.append(delta)
        return deltas, None

    def _whole(self, request: Request, raw: bytes) -> Completion:
        try:
            answer = parse_completion(raw)
        except ValueError as exc:  # includes pydantic's ValidationError and UnicodeDecodeError
            raise MemberError(self.name, f"upstream sent garbage: {_first_line(exc)}") from exc
        first = answer.choices[0]
        return self._completion(
            request,
            first.message.content or "",
            answer.usage,
            answer.model,
            first.finish_reason,
            choices=tuple(answer.choices),
            fingerprint=answer.system_fingerprint,
            service_tier=answer.service_tier,
        )

    def _payload(self, request: Request, *, stream: bool) -> dict[str, Any]:
        return to_payload(
            request,
            self.settings.model,
            stream=stream,
            default_max_tokens=self.settings.default_max_tokens,
            stream_usage=self.settings.stream_usage,
        )

    def _completion(
        self,
        request: Request,
        text: str,
        reported: CompletionUsage | None,
        model: str,
        finish: str,
        *,
        choices: tuple[Choice, ...] = (),
        fingerprint: str | None = None,
        service_tier: str | None = None,
    ) -> Completion:
        usage = parse_usage(reported)
        if usage.input_tokens == 0 and usage.output_tokens == 0:
            usage = Usage(request.prompt_tokens, estimate_tokens(text))
        return Completion(
            text=text,
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=model or self.settings.model,
            finish_reason=finish,
            choices=choices,
            reported_usage=reported,
            system_fingerprint=fingerprint,
            service_tier=service_tier,
        )


def _first_line(exc: Exception) -> str:
    """A parse error's gist: pydantic's messages run to many lines."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
