"""A finished stream gives its connection back to the pool, and holds nothing up.

A connection is reused only once the response body's end (the chunked encoding's last
chunk) has been read. An upstream may send that end a moment after ``[DONE]``:
the member then reads it in the background, so the next call reuses the connection
instead of opening a new one, and the client's stream never waits for it. An upstream
that never ends its body after ``[DONE]`` gets the connection closed after the idle
timeout, and closing the member stops the wait.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pinfactory.gateway.server import serve_in_thread
from pinfactory.members import Completion
from pinfactory.members.base import Delta, each
from pinfactory.members.openai_http import OpenAIHTTPMember, OpenAIHTTPSettings
from pinfactory.request import Request
from pinfactory.testing.recording import text_chunks

WORDS = ["one ", "two"]


class LateEnd:
    """Streams ``WORDS`` and ``[DONE]``, then ends the body ``after_s`` later (model
    ``late``) or never (model ``never``); remembers each request's client port."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.release = asyncio.Event()

    def app(self) -> Starlette:
        async def chat(request: HTTPRequest) -> Response:
            payload = await request.json()
            assert request.client is not None
            self.ports.append(request.client.port)

            async def body() -> AsyncIterator[bytes]:
                for chunk in text_chunks(WORDS, usage=True):
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
                if payload["model"] == "never":
                    await asyncio.Event().wait()  # until the server shuts the task down
                await asyncio.sleep(0.05)  # the body's end comes in a read of its own

            return StreamingResponse(body(), media_type="text/event-stream")

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture(scope="module")
def late_end() -> Iterator[tuple[LateEnd, str]]:
    server = LateEnd()
    with serve_in_thread(server.app()) as url:
        yield server, url + "/v1"


async def _stream(member: OpenAIHTTPMember) -> Completion:
    events = [e async for run in member.stream(Request.from_text("count")) for e in each(run)]
    assert [e.text for e in events if isinstance(e, Delta)] == ["", *WORDS, ""]
    completion = events[-1]
    assert isinstance(completion, Completion)
    return completion


async def _drained(member: OpenAIHTTPMember) -> None:
    """Until the member has read the body's end after ``[DONE]`` (its background reads)."""
    async with asyncio.timeout(10):
        while member.upstream._draining:
            await asyncio.sleep(0.01)


async def test_streams_reuse_one_connection_when_the_body_ends_after_done(
    late_end: tuple[LateEnd, str],
) -> None:
    server, url = late_end
    member = OpenAIHTTPMember("remote", OpenAIHTTPSettings(base_url=url, model="late"))
    await member.open()
    try:
        server.ports.clear()
        for _ in range(4):
            completion = await _stream(member)
            assert completion.text == "".join(WORDS)
            await _drained(member)  # the body's end has come and been read
    finally:
        await member.close()
    assert len(server.ports) == 4
    assert len(set(server.ports)) == 1  # one connection for all four streams


async def test_a_body_that_never_ends_after_done_is_closed_not_reused(
    late_end: tuple[LateEnd, str],
) -> None:
    server, url = late_end
    settings = OpenAIHTTPSettings.model_validate(
        {"base_url": url, "model": "never", "upstream": {"idle_timeout_s": 0.2}}
    )
    member = OpenAIHTTPMember("remote", settings, timeout_s=5.0)
    await member.open()
    try:
        server.ports.clear()
        await _stream(member)  # answered in full although the body is still open
        await asyncio.sleep(0.5)  # past the idle timeout: the connection is closed
        await _stream(member)  # the second wait is cut short by closing the member
    finally:
        await member.close()
    assert len(set(server.ports)) == 2
