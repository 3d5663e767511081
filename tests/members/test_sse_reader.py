"""The upstream's event stream read a burst at a time (``members.upstream._SSEReader``).

An upstream writes a run of chunks back to back, each in a write of its own; the reader
takes what of the run arrived while it read the first (one turn of the event loop, no
timer), and never waits for a chunk that is not there yet. Fed through aiohttp's own
``StreamReader``, as the response's body is.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol

from pinfactory.members.upstream import UpstreamFailed, _SSEReader


@pytest.fixture
async def content() -> AsyncIterator[StreamReader]:
    """A response body's reader on a connected (idle) socket, fed by the test."""
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
    yield StreamReader(protocol, 2**16, loop=loop)
    transport.close()
    theirs.close()


def reader(content: StreamReader) -> _SSEReader:
    response = SimpleNamespace(content=content)
    return _SSEReader("remote", response, 1 << 20)  # type: ignore[arg-type]


async def test_chunks_that_arrive_while_the_first_is_read_join_it(content: StreamReader) -> None:
    sse = reader(content)
    content.feed_data(b'data: {"n": 1}\n\n')
    loop = asyncio.get_running_loop()
    loop.call_soon(content.feed_data, b'data: {"n": 2}\n\ndata: [DONE]\n\n')
    assert await sse.next_chunks() == [b'{"n": 1}', b'{"n": 2}']
    assert sse.done


async def test_a_chunk_that_comes_later_is_not_waited_for(content: StreamReader) -> None:
    sse = reader(content)
    content.feed_data(b'data: {"n": 1}\n\n')
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, content.feed_data, b'data: {"n": 2}\n\ndata: [DONE]\n\n')
    assert await sse.next_chunks() == [b'{"n": 1}']
    assert not sse.done
    assert await sse.next_chunks() == [b'{"n": 2}']
    assert sse.done


async def test_a_half_line_waits_for_its_end_and_comments_are_skipped(
    content: StreamReader,
) -> None:
    sse = reader(content)
    content.feed_data(b': keep-alive\n\ndata: {"n"')
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, content.feed_data, b": 1}\n\n")
    assert await sse.next_chunks() == [b'{"n": 1}']


async def test_an_end_without_done_fails(content: StreamReader) -> None:
    sse = reader(content)
    content.feed_data(b'data: {"n": 1}\n\n')
    content.feed_eof()
    assert await sse.next_chunks() == [b'{"n": 1}']
    with pytest.raises(UpstreamFailed, match="without \\[DONE\\]"):
        await sse.next_chunks()
