"""An OpenAI-compatible upstream that records what it was sent and answers as told.

For conformance tests: serve :meth:`RecordingUpstream.app` on loopback (a real HTTP
server), point an ``openai_http`` member at it, script the next answer with
:meth:`RecordingUpstream.answer` (a completion body, stream chunks, or an error), and
read the exact bodies the gateway sent from :attr:`RecordingUpstream.bodies`.
With nothing scripted it answers ``"ok"`` (a completion, or two chunks and a usage
chunk when the request streams and asks for usage).
"""

from __future__ import annotations

import base64
import json
import threading
from array import array
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

USAGE = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}


@dataclass(frozen=True, slots=True)
class Scripted:
    """One answer: a body (with ``status``), or SSE chunks when ``chunks`` is given."""

    body: Mapping[str, Any] | None = None
    chunks: Sequence[Mapping[str, Any]] | None = None
    status: int = 200


def completion(
    content: str | None = "ok", *, usage: Mapping[str, Any] = USAGE, **fields: Any
) -> dict[str, Any]:
    """A ``chat.completion`` body with one choice saying ``content`` (``fields`` override)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-recorded",
        "object": "chat.completion",
        "created": 1,
        "model": "upstream-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": dict(usage),
    }
    body.update(fields)
    return body


def chunk(choices: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with these choices."""
    return {
        "id": "chatcmpl-recorded",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "upstream-model",
        "choices": choices,
        **fields,
    }


def text_chunks(words: Sequence[str], *, usage: bool) -> list[dict[str, Any]]:
    """A stream saying ``words``: role, the words, a finish chunk, then usage if asked."""
    chunks = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    chunks += [chunk([{"index": 0, "delta": {"content": w}}]) for w in words]
    chunks.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if usage:
        chunks.append(chunk([], usage=dict(USAGE)))
    return chunks


@dataclass
class RecordingUpstream:
    """Records every body posted to ``/v1/chat/completions`` or ``/v1/embeddings`` and
    answers from a script."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    _script: deque[Scripted] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, scripted: Scripted) -> None:
        """Answer the next request with ``scripted`` (answers queue up in order)."""
        with self._lock:
            self._script.append(scripted)

    def reset(self) -> None:
        with self._lock:
            self.bodies.clear()
            self._script.clear()

    @property
    def last(self) -> dict[str, Any]:
        """The body of the latest request."""
        return self.bodies[-1]

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            body = json.loads(await request.body())
            with self._lock:
                self.bodies.append(body)
                scripted = self._script.popleft() if self._script else None
            if scripted is None:
                wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                scripted = (
                    Scripted(chunks=text_chunks(["o", "k"], usage=wants_usage))
                    if body.get("stream")
                    else Scripted(completion())
                )
            if scripted.chunks is not None:
                return StreamingResponse(_sse(scripted.chunks), media_type="text/event-stream")
            return JSONResponse(dict(scripted.body or {}), status_code=scripted.status)

        async def embeddings(request: Request) -> Response:
            body = json.loads(await request.body())
            with self._lock:
                self.bodies.append(body)
                scripted = self._script.popleft() if self._script else None
            if scripted is None:
                scripted = Scripted(embedding_list(body))
            return JSONResponse(dict(scripted.body or {}), status_code=scripted.status)

        return Starlette(
            routes=[
                Route("/v1/chat/completions", chat, methods=["POST"]),
                Route("/v1/embeddings", embeddings, methods=["POST"]),
            ]
        )


def embedding_list(body: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to an embeddings ``body``: input ``i`` (of any kind) gets the vector
    ``[i, 0.5, -0.25]`` (``dimensions`` long when asked: ``[i, 0.5, ...]`` cut or padded with
    zeros), as floats or as base64 float32 per its ``encoding_format``; one prompt token per
    character or token of the inputs."""
    given = body.get("input")
    items = [given] if isinstance(given, str) or (given and isinstance(given[0], int)) else given
    size = body.get("dimensions") or 3
    data, tokens = [], 0
    for i, item in enumerate(items or []):
        tokens += len(item)
        vector = ([float(i), 0.5, -0.25] + [0.0] * size)[:size]
        if body.get("encoding_format") == "base64":
            encoded: Any = base64.b64encode(array("f", vector).tobytes()).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": "upstream-embedder",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def _sse(chunks: Sequence[Mapping[str, Any]]) -> AsyncIterator[bytes]:
    for item in chunks:
        yield b"data: " + json.dumps(item).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"
