"""OpenAI-compatible upstreams for tests and benchmarks.

- :func:`instant_upstream`: answers every chat completion at once, with a
  fixed text and usage; the baseline for measuring gateway overhead.
- :func:`misbehaving_upstream`: a real HTTP server that fails on purpose,
  chosen by the requested model name: ``slow`` (sleeps past any sane
  timeout), ``garbage`` (200 with a non-JSON body), ``wrong-shape`` (JSON
  without choices), ``error-500``, ``error-429``, ``cut`` (a stream that
  stops halfway), ``echo`` (behaves).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = "ok"


def completion(
    model: str, text: str, prompt_tokens: int = 5, completion_tokens: int = 1
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _chunks(model: str, words: list[str], *, usage: bool) -> list[bytes]:
    out = []
    for word in words:
        chunk = {
            "id": "chatcmpl-upstream",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
        }
        out.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    if usage:
        tail = {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": len(words),
                "total_tokens": 5 + len(words),
            },
        }
        out.append(b"data: " + json.dumps(tail).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def instant_upstream() -> Starlette:
    body = json.dumps(completion("instant", ANSWER)).encode()

    async def chat(request: Request) -> Response:
        payload = json.loads(await request.body())
        if payload.get("stream"):

            async def gen() -> Any:
                for part in _chunks("instant", ["o", "k"], usage=True):
                    yield part

            return StreamingResponse(gen(), media_type="text/event-stream")
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def misbehaving_upstream(slow_s: float = 30.0) -> Starlette:
    async def chat(request: Request) -> Response:
        payload = json.loads(await request.body())
        model = payload.get("model", "echo")
        if model == "slow":
            await asyncio.sleep(slow_s)
        if model == "garbage":
            return Response(b"<html>definitely not json", media_type="application/json")
        if model == "wrong-shape":
            return JSONResponse({"object": "chat.completion", "choices": []})
        if model.startswith("error-"):
            status = int(model.removeprefix("error-"))
            return JSONResponse({"error": {"message": "upstream says no"}}, status_code=status)
        text = " ".join(m.get("content", "") for m in payload["messages"] if m["role"] == "user")
        if payload.get("stream"):
            words = [w + " " for w in text.split()]

            async def gen() -> Any:
                for i, part in enumerate(_chunks(model, words, usage=True)):
                    if model == "cut" and i == 1:
                        yield b"data: {broken json\n\n"
                        return
                    yield part

            return StreamingResponse(gen(), media_type="text/event-stream")
        return JSONResponse(completion(model, f"echo: {text}", 7, len(text.split()) + 1))

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
