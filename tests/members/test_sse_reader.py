"""The upstream's event stream read a burst at a time (``members.upstream._SSEReader``).

An upstream writes a run of chunks back to back, each in a write of its own; the reader
takes what of the run arrived while it read the first (one turn of the event loop, no
timer), and never waits for a chunk that is not there yet. Fed through the HTTP client's
own body buffer (``members.http1``), as a response's body is.
"""

from __future__ import annotations

import asyncio

import pytest

from pinfactory.members.http1 import _Stream
from pinfactory.members.upstream import UpstreamFailed, _SSEReader


def reader() -> tuple[_SSEReader, _Stream]:
    body = _Stream()
    return _SSEReader("remote", body, 1 << 20), body  # type: ignore[arg-type]


async def test_chunks_that_arrive_while_the_first_is_read_join_it() -> None:
    sse, body = reader()
    body.feed(b'data: {"n": 1}\n\n')
    asyncio.get_running_loop().call_soon(body.feed, b'data: {"n": 2}\n\ndata: [DONE]\n\n')
    assert await sse.next_chunks() == [b'{"n": 1}', b'{"n": 2}']
    assert sse.done


async def test_a_chunk_that_comes_later_is_not_waited_for() -> None:
    sse, body = reader()
    body.feed(b'data: {"n": 1}\n\n')
    # far later than the reader's two loop turns, even on a loaded machine
    later = b'data: {"n": 2}\n\ndata: [DONE]\n\n'
    asyncio.get_running_loop().call_later(0.5, body.feed, later)
    assert await sse.next_chunks() == [b'{"n": 1}']
    assert not sse.done
    assert await sse.next_chunks() == [b'{"n": 2}']
    assert sse.done


async def test_a_half_line_waits_for_its_end_and_comments_are_skipped() -> None:
    sse, body = reader()
    body.feed(b': keep-alive\n\ndata: {"n"')
    asyncio.get_running_loop().call_later(0.02, body.feed, b": 1}\n\n")
    assert await sse.next_chunks() == [b'{"n": 1}']


async def test_an_end_without_done_fails() -> None:
    sse, body = reader()
    body.feed(b'data: {"n": 1}\n\n')
    body.finish()
    assert await sse.next_chunks() == [b'{"n": 1}']
    with pytest.raises(UpstreamFailed, match="without \\[DONE\\]"):
        await sse.next_chunks()
