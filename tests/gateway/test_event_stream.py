"""``EventStream`` sends the response head with its first write, not ahead of it.

A head sent ahead wakes the client once for the head and again for the frames; sent
together, as a plain answer's head and body are, the frames find it awake. A body that
fails before writing anything therefore leaves the response unstarted (the server
answers 500) instead of a 200 head with no body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pinfactory.gateway.sse import EventStream

Write = Callable[[bytes, bool], Awaitable[None]]


async def _run(stream: EventStream, sent: list[dict[str, Any]]) -> None:
    """Serve ``stream`` to a client that stays, recording what it sends into ``sent``."""

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await stream({"type": "http"}, receive, send)


async def test_the_head_leaves_with_the_first_frames() -> None:
    seen_before_write: list[int] = []
    sent: list[dict[str, Any]] = []

    async def body(write: Write) -> None:
        seen_before_write.append(len(sent))
        await asyncio.sleep(0.01)  # the first event takes a while
        await write(b"data: 1\n\n", True)
        await write(b"data: [DONE]\n\n", False)

    await _run(EventStream(body, {"x-request-id": "req_1"}), sent)
    assert seen_before_write == [0]  # nothing went before the body's first write
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    assert sent[0]["status"] == 200
    assert (b"x-request-id", b"req_1") in sent[0]["headers"]
    assert [m["more_body"] for m in sent[1:]] == [True, False]


async def test_a_body_that_fails_before_writing_starts_no_response() -> None:
    async def body(write: Write) -> None:
        raise RuntimeError("broke before the first event")

    sent: list[dict[str, Any]] = []
    with pytest.raises(RuntimeError, match="before the first event"):
        await _run(EventStream(body, {}), sent)
    assert sent == []
