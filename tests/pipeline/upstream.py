"""A scripted OpenAI-compatible upstream for the request-path tests, chosen by model name.

- ``words``: answers with one word per output token, as many as ``max_tokens`` allows
  (default 1,000), and reports that usage; streams when asked.
- ``error-mid``: a 200 stream that sends two words, then an OpenAI-style error event.
- ``slow-stream``: streams a word every 50 ms, 400 words (a client can leave halfway).

Counts the calls it received (``calls``), so a test can check no member was called.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_TOKENS = 1000


@dataclass
class Counter:
    calls: int = 0


def _chunk(model: str, delta: dict[str, str], usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, object] = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if delta else [],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def scripted_upstream(counter: Counter) -> Starlette:
    async def chat(request: Request) -> Response:
        counter.calls += 1
        payload = json.loads(await request.body())
        model = str(payload.get("model"))
        n = int(payload.get("max_tokens") or DEFAULT_TOKENS)
        usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
        if model == "error-mid":

            async def broken() -> AsyncIterator[bytes]:
                yield _chunk(model, {"content": "half "})
                yield _chunk(model, {"content": "an answer "})
                error = {"error": {"message": "overloaded mid-stream", "type": "server_error"}}
                yield b"data: " + json.dumps(error).encode() + b"\n\n"

            return StreamingResponse(broken(), media_type="text/event-stream")
        if model == "slow-stream":

            async def slow() -> AsyncIterator[bytes]:
                for _ in range(400):
                    yield _chunk(model, {"content": "word "})
                    await asyncio.sleep(0.05)
                yield _chunk(model, {}, {"prompt_tokens": 10, "completion_tokens": 400,
                                         "total_tokens": 410})  # fmt: skip
                yield b"data: [DONE]\n\n"

            return StreamingResponse(slow(), media_type="text/event-stream")
        text = " ".join(["word"] * n)
        if payload.get("stream"):

            async def words() -> AsyncIterator[bytes]:
                yield _chunk(model, {"content": text})
                yield _chunk(model, {}, usage)
                yield b"data: [DONE]\n\n"

            return StreamingResponse(words(), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-up",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "length",
                    }
                ],
                "usage": usage,
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
