"""A member behind any OpenAI-compatible endpoint, over a pooled aiohttp session.

Translation (request -> payload, response -> completion) is pure and kept
apart from transport: :class:`~pinfactory.members.upstream.Upstream` sends,
times out, retries, breaks the circuit and maps faults to :class:`MemberError`.

Why aiohttp and not httpx: against an instant upstream on loopback, one
keep-alive request costs about 0.47 ms of client time with aiohttp and
1.35 ms with httpx 0.28 (``bench/gateway_overhead.py``; docs/observe.md). The
member is the gateway's hot path, so the difference is most of the latency
the gateway adds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import MemberError
from pinfactory.members.base import Completion, Member, Usage
from pinfactory.members.registry import register
from pinfactory.members.upstream import Upstream, UpstreamSpec, WholeBody
from pinfactory.reliability.breaker import CircuitBreaker
from pinfactory.request import Request, estimate_tokens


class OpenAIHTTPSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:8000/v1")
    api_key: str = ""
    model: str = Field(min_length=1)
    max_connections: int = Field(default=100, gt=0)
    default_max_tokens: int | None = Field(default=None, gt=0)
    upstream: UpstreamSpec = Field(
        default_factory=UpstreamSpec,
        description="timeouts, retries, breaker, size cap; the team's ``upstream:`` is the default",
    )


def to_payload(
    request: Request, model: str, *, stream: bool, default_max_tokens: int | None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
    }
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    max_tokens = request.max_tokens or default_max_tokens
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    if request.stop:
        payload["stop"] = list(request.stop)
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return payload


def parse_completion(body: Any) -> tuple[str, Usage, str, str]:
    """(text, usage, model, finish_reason) from a chat completion body.

    Raises ``ValueError`` when the body is not a chat completion.
    """
    if not isinstance(body, Mapping):
        raise ValueError("response is not a JSON object")
    try:
        choice = body["choices"][0]
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason") or "stop"
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError("response has no choices[0].message") from exc
    if not isinstance(text, str):
        raise ValueError("choices[0].message.content is not a string")
    return text, parse_usage(body.get("usage")), str(body.get("model") or ""), str(finish)


def parse_usage(usage: Any) -> Usage:
    if not isinstance(usage, Mapping):
        return Usage()
    return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


def parse_sse_line(line: str) -> Mapping[str, Any] | None:
    """One ``data:`` line of a streamed response; None for keep-alives and ``[DONE]``."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return None
    chunk = orjson.loads(data)
    if not isinstance(chunk, Mapping):
        raise ValueError("stream chunk is not a JSON object")
    return chunk


@register
class OpenAIHTTPMember(Member):
    """Any OpenAI-compatible chat completions endpoint."""

    kind = "openai_http"
    Settings = OpenAIHTTPSettings
    settings: OpenAIHTTPSettings

    _upstream: Upstream | None = None

    @property
    def upstream(self) -> Upstream:
        """The transport (timeouts, retries, breaker); built on first use, opened in ``open``."""
        if self._upstream is None:
            headers = {}
            if self.settings.api_key:
                headers["authorization"] = f"Bearer {self.settings.api_key}"
            self._upstream = Upstream(
                self.name,
                self.settings.base_url.rstrip("/") + "/chat/completions",
                self.settings.upstream,
                timeout_s=self.timeout_s,
                headers=headers,
                max_connections=self.settings.max_connections,
            )
        return self._upstream

    @property
    def breaker(self) -> CircuitBreaker:
        return self.upstream.breaker

    async def open(self) -> None:
        await self.upstream.open()

    async def close(self) -> None:
        if self._upstream is not None:
            await self._upstream.close()
            self._upstream = None

    async def complete(self, request: Request) -> Completion:
        body = await self.upstream.post(orjson.dumps(self._payload(request, stream=False)))
        with self.upstream.garbled("body"):
            text, usage, model, finish = parse_completion(body)
        return self._completion(request, text, usage, model, finish)

    async def stream(self, request: Request) -> AsyncIterator[str | Completion]:
        body = orjson.dumps(self._payload(request, stream=True))
        parts: list[str] = []
        usage, model, finish = Usage(), "", "stop"
        async with aclosing(self.upstream.stream(body)) as chunks:
            async for chunk in chunks:
                with self.upstream.garbled("stream"):
                    if isinstance(chunk, WholeBody):  # the upstream ignored ``stream``
                        text, usage, model, finish = parse_completion(chunk.body)
                        deltas = [text] if text else []
                    else:
                        if chunk.get("error") is not None:  # an error event in a 200 stream
                            raise MemberError(self.name, f"upstream stream error: {_error(chunk)}")
                        model = str(chunk.get("model") or model)
                        usage = parse_usage(chunk.get("usage")) if chunk.get("usage") else usage
                        deltas = []
                        for choice in chunk.get("choices") or ():
                            finish = choice.get("finish_reason") or finish
                            delta = (choice.get("delta") or {}).get("content")
                            if delta:
                                if not isinstance(delta, str):
                                    raise ValueError("delta.content is not a string")
                                deltas.append(delta)
                for delta in deltas:
                    parts.append(delta)
                    yield delta
        yield self._completion(request, "".join(parts), usage, model, finish)

    def _payload(self, request: Request, *, stream: bool) -> dict[str, Any]:
        return to_payload(
            request,
            self.settings.model,
            stream=stream,
            default_max_tokens=self.settings.default_max_tokens,
        )

    def _completion(
        self, request: Request, text: str, usage: Usage, model: str, finish: str
    ) -> Completion:
        if usage.input_tokens == 0 and usage.output_tokens == 0:
            usage = Usage(request.prompt_tokens, estimate_tokens(text))
        return Completion(
            text=text,
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=model or self.settings.model,
            finish_reason=finish,
        )


def _error(chunk: Mapping[str, Any]) -> str:
    """The message of an OpenAI-style ``{"error": {...}}`` event, or the event itself."""
    error = chunk.get("error")
    message = error.get("message") if isinstance(error, Mapping) else error
    return str(message)[:200]
