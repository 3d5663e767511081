"""A member behind any OpenAI-compatible endpoint, over pooled async httpx.

Translation (request -> payload, response -> completion) is pure and kept
apart from transport; the HTTP layer only sends, times out and maps faults
to :class:`MemberError` (502) or :class:`MemberTimeout` (504).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
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
    chunk = json.loads(data)
    if not isinstance(chunk, Mapping):
        raise ValueError("stream chunk is not a JSON object")
    return chunk


@register
class OpenAIHTTPMember(Member):
    """Any OpenAI-compatible chat completions endpoint."""

    kind = "openai_http"
    Settings = OpenAIHTTPSettings
    settings: OpenAIHTTPSettings

    _client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        if self._client is None:
            headers = (
                {"authorization": f"Bearer {self.settings.api_key}"}
                if self.settings.api_key
                else {}
            )
            limits = httpx.Limits(
                max_connections=self.settings.max_connections,
                max_keepalive_connections=self.settings.max_connections,
            )
            self._client = httpx.AsyncClient(
                base_url=self.settings.base_url.rstrip("/"),
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0)),
                limits=limits,
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise MemberError(self.name, "member is not open")
        return self._client

    async def complete(self, request: Request) -> Completion:
        payload = self._payload(request, stream=False)
        try:
            response = await self.client.post("/chat/completions", json=payload)
        except httpx.TimeoutException as exc:
            raise MemberTimeout(self.name, f"no answer within {self.timeout_s:g}s") from exc
        except httpx.HTTPError as exc:
            raise MemberError(self.name, f"cannot reach upstream: {type(exc).__name__}") from exc
        self._check_status(response)
        try:
            text, usage, model, finish = parse_completion(response.json())
        except ValueError as exc:
            raise MemberError(self.name, f"upstream sent garbage: {exc}") from exc
        return self._completion(request, text, usage, model, finish)

    async def stream(self, request: Request) -> AsyncIterator[str | Completion]:
        payload = self._payload(request, stream=True)
        parts: list[str] = []
        usage, model, finish = Usage(), "", "stop"
        try:
            async with self.client.stream("POST", "/chat/completions", json=payload) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._check_status(response)
                async for line in response.aiter_lines():
                    chunk = parse_sse_line(line)
                    if chunk is None:
                        continue
                    model = str(chunk.get("model") or model)
                    usage = parse_usage(chunk.get("usage")) if chunk.get("usage") else usage
                    for choice in chunk.get("choices") or ():
                        delta = (choice.get("delta") or {}).get("content")
                        finish = choice.get("finish_reason") or finish
                        if delta:
                            parts.append(delta)
                            yield delta
        except httpx.TimeoutException as exc:
            raise MemberTimeout(self.name, f"stream stalled for {self.timeout_s:g}s") from exc
        except httpx.HTTPError as exc:
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

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        status = 504 if response.status_code in (408, 504) else 502
        detail = response.text[:200].strip().replace("\n", " ")
        raise MemberError(
            self.name, f"upstream answered HTTP {response.status_code}: {detail}", status=status
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
