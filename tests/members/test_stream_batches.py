"""Chunks that reach the gateway in one read go on together, and none is lost.

An upstream that writes its whole stream at once (one body, so one read on loopback)
is the case the relay coalesces: the member yields the read's chunks as one event (a
:class:`Deltas` run), so the member call, the pipeline and the relay each handle the run
once; the run is ``more`` (the next event is already here) when ``[DONE]`` came in the
read (the completion is next), so the gateway writes them with the closing frames, and
nothing about what the client receives changes: every chunk, in order, then the
finish, the usage and ``[DONE]``; a garbled chunk in the same read still ends the
stream with an error event after the chunks before it, and a 502 row.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.members import Completion
from pinfactory.members.base import Deltas, StreamEvent
from pinfactory.members.openai_http import OpenAIHTTPMember, OpenAIHTTPSettings
from pinfactory.request import Request
from pinfactory.team import parse_team
from pinfactory.testing.recording import USAGE, text_chunks
from tests.conftest import ledger_rows

WORDS = ["one ", "two ", "three ", "four"]


def _burst(chunks: list[dict[str, Any]], *, garbled_after: int | None = None) -> bytes:
    """A whole event stream as one body: a comment, the chunks, ``[DONE]``."""
    frames = [b": warming up\n\n"]
    for index, item in enumerate(chunks):
        if garbled_after is not None and index == garbled_after:
            frames.append(b"data: {not json\n\n")
            break
        frames.append(b"data: " + json.dumps(item).encode() + b"\n\n")
    else:
        frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


def burst_upstream() -> Starlette:
    """Answers every stream in one write; the model name picks a garbled one."""

    async def chat(request: HTTPRequest) -> Response:
        payload = await request.json()
        garbled = 3 if payload["model"] == "garbled" else None
        body = _burst(text_chunks(WORDS, usage=True), garbled_after=garbled)
        if payload["model"] == "late-done":  # the chunks at once, [DONE] in a later read
            chunks, done = body.removesuffix(b"data: [DONE]\n\n"), b"data: [DONE]\n\n"

            async def later() -> AsyncIterator[bytes]:
                yield chunks
                await asyncio.sleep(0.2)
                yield done

            return StreamingResponse(later(), media_type="text/event-stream")
        return Response(body, media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with serve_in_thread(burst_upstream()) as url:
        yield url + "/v1"


async def _events(upstream_url: str, model: str) -> list[StreamEvent]:
    settings = OpenAIHTTPSettings(base_url=upstream_url, model=model)
    member = OpenAIHTTPMember("remote", settings, timeout_s=5.0)
    await member.open()
    try:
        return [e async for e in member.stream(Request.from_text("count"))]
    finally:
        await member.close()


async def test_a_read_of_several_chunks_is_one_event(upstream_url: str) -> None:
    run, completion = await _events(upstream_url, "late-done")
    assert isinstance(run, Deltas)
    # the role chunk, four words, the finish chunk (the usage chunk is not relayed)
    assert [d.text for d in run.deltas] == ["", *WORDS, ""]
    assert not run.more  # [DONE] is not here yet
    # one by one (a fallback relays them so), each but the last is followed at once
    assert [d.more for d in run.deltas] == [True] * 5 + [False]
    assert run.deltas[-1].finish
    assert isinstance(completion, Completion)
    assert completion.text == "".join(WORDS)


async def test_a_read_that_ends_the_stream_is_followed_by_the_completion(
    upstream_url: str,
) -> None:
    """[DONE] came with them: the completion is next, and the relay writes the chunks
    with the closing frames in one write."""
    run, completion = await _events(upstream_url, "m")
    assert isinstance(run, Deltas)
    assert [d.text for d in run.deltas] == ["", *WORDS, ""]
    assert run.more
    assert [d.more for d in run.deltas] == [True] * 6
    assert run.deltas[-1].finish
    assert isinstance(completion, Completion)
    assert completion.text == "".join(WORDS)
    assert completion.usage.input_tokens == USAGE["prompt_tokens"]


@pytest.fixture
def gateway(tmp_path: Path, upstream_url: str) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path / "ledger.db"
    team = parse_team(
        "name: burst\n"
        f"members: [{{name: remote, kind: openai_http, settings: {{base_url: '{upstream_url}', "
        "model: m}}, {name: broken, kind: openai_http, "
        f"settings: {{base_url: '{upstream_url}', model: garbled}}}}]\n"
        "routing: {kind: rules, fallback: remote}\n"
        "upstream: {retries: 0}\n",
        "burst.yaml",
        {"PINFACTORY_LEDGER": str(ledger)},
    )
    with serve_in_thread(create_app(team)) as url:
        yield url, ledger


def test_coalesced_chunks_all_reach_the_sdk_in_order(gateway: tuple[str, Path]) -> None:
    url, ledger = gateway
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    said = [c.choices[0].delta.content for c in chunks if c.choices]
    assert said == ["", *WORDS, None]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == USAGE["prompt_tokens"]
    assert all(c.usage is None for c in chunks[:-1])
    (row,) = ledger_rows(ledger)
    assert row["status"] == 200 and row["member"] == "remote"


def test_a_garbled_chunk_in_the_same_read_ends_after_the_ones_before_it(
    gateway: tuple[str, Path],
) -> None:
    url, ledger = gateway
    said: list[str | None] = []
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="broken", messages=[{"role": "user", "content": "count"}], stream=True
        )
        with pytest.raises(openai.APIError, match="garbled stream"):
            said.extend(item.choices[0].delta.content for item in stream)
    assert said == ["", *WORDS[:2]]  # the chunks before the garbled one, none dropped
    (row,) = ledger_rows(ledger)
    assert row["status"] == 502 and "garbled" in row["error"]
