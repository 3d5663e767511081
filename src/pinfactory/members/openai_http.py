"""A member behind any OpenAI-compatible endpoint, over a pooled aiohttp session.

Translation (request -> payload, response -> completion) is pure and kept
apart from transport; the HTTP layer only sends, times out and maps faults
to :class:`MemberError` (502) or :class:`MemberTimeout` (504).

Why aiohttp and not httpx: against an instant upstream on loopback, one
keep-alive request costs about 0.47 ms of client time with aiohttp and
1.35 ms with httpx 0.28 (``bench/gateway_overhead.py``; docs/observe.md). The
member is the gateway's hot path, so the difference is most of the latency
the gateway adds. Timeouts keep httpx's meaning: ``timeout_s`` bounds each
read (so a long stream that keeps talking is fine), connecting gets at most 5 s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import MemberError, MemberTimeout
from pinfactory.members.base import Completion, Member, Usage
from pinfactory.members.registry import register
from pinfactory.request import Request, estimate_tokens


class OpenAIHTTPSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:8000/v1")
    api_key: str = ""
    model: str = Field(min_length=1)
    max_connections: int = Field(default=100, gt=0)
    default_max_tokens: int | None = Field(default=None, gt=0)


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

    _session: aiohttp.ClientSession | None = None
    _url: str = ""

    async def open(self) -> None:
        if self._session is None:
            headers = {"content-type": "application/json"}
            if self.settings.api_key:
                headers["authorization"] = f"Bearer {self.settings.api_key}"
            connector = aiohttp.TCPConnector(
                limit=self.settings.max_connections,
                limit_per_host=self.settings.max_connections,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                headers=headers,
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_read=self.timeout_s, connect=min(self.timeout_s, 5.0)
                ),
                auto_decompress=True,
                skip_auto_headers=("user-agent",),
            )
            self._url = self.settings.base_url.rstrip("/") + "/chat/completions"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise MemberError(self.name, "member is not open")
        return self._session

    async def complete(self, request: Request) -> Completion:
        body = orjson.dumps(self._payload(request, stream=False))
        try:
            async with self.session.post(self._url, data=body) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError as exc:
            raise MemberTimeout(self.name, f"no answer within {self.timeout_s:g}s") from exc
        except aiohttp.ClientError as exc:
            raise MemberError(self.name, f"cannot reach upstream: {type(exc).__name__}") from exc
        self._check_status(status, raw)
        try:
            text, usage, model, finish = parse_completion(orjson.loads(raw))
        except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
            raise MemberError(self.name, f"upstream sent garbage: {exc}") from exc
        return self._completion(request, text, usage, model, finish)

    async def stream(self, request: Request) -> AsyncIterator[str | Completion]:
        body = orjson.dumps(self._payload(request, stream=True))
        parts: list[str] = []
        usage, model, finish = Usage(), "", "stop"
        try:
            async with self.session.post(self._url, data=body) as response:
                if response.status >= 400:
                    self._check_status(response.status, await response.read())
                async for line in _lines(response):
                    chunk = parse_sse_line(line)
                    if chunk is None:
                        continue
                    if chunk.get("error") is not None:  # an error event inside a 200 stream
                        raise MemberError(self.name, f"upstream stream error: {_error(chunk)}")
                    model = str(chunk.get("model") or model)
                    usage = parse_usage(chunk.get("usage")) if chunk.get("usage") else usage
                    for choice in chunk.get("choices") or ():
                        delta = (choice.get("delta") or {}).get("content")
                        finish = choice.get("finish_reason") or finish
                        if delta:
                            parts.append(delta)
                            yield delta
        except TimeoutError as exc:
            raise MemberTimeout(self.name, f"stream stalled for {self.timeout_s:g}s") from exc
        except aiohttp.ClientError as exc:
            raise MemberError(self.name, f"stream broke: {type(exc).__name__}") from exc
        except (ValueError, AttributeError) as exc:
            raise MemberError(self.name, f"upstream sent a garbled stream: {exc}") from exc
        yield self._completion(request, "".join(parts), usage, model, finish)

    def _payload(self, request: Request, *, stream: bool) -> dict[str, Any]:
        return to_payload(
            request,
            self.settings.model,
            stream=stream,
            default_max_tokens=self.settings.default_max_tokens,
        )

    def _check_status(self, status: int, body: bytes) -> None:
        if status < 400:
            return
        detail = body[:200].decode(errors="replace").strip().replace("\n", " ")
        raise MemberError(
            self.name,
            f"upstream answered HTTP {status}: {detail}",
            status=504 if status in (408, 504) else 502,
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


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body as text lines, however the upstream splits its chunks."""
    buffer = b""
    async for chunk in response.content.iter_any():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode().rstrip("\r")
    if buffer:
        yield buffer.decode().rstrip("\r")
