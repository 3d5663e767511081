"""``Http1Pool.stream``: a response's body read as it arrives, against real local servers:
chunks handed on as they come, the end, the connection back to the pool only after it,
an encoded stream decoded, and the faults (cut, over the cap) raised from ``read``."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from pinfactory.members.http1 import BodyCut, Http1Pool, Streamed, TooLarge
from tests.members.test_http1 import always, pool, scripted

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunked(*parts: bytes, end: bool = True) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return body + (b"0\r\n\r\n" if end else b"")


@asynccontextmanager
async def stepwise(steps: list[asyncio.Event]) -> AsyncIterator[tuple[int, list[int]]]:
    """A server that answers each request with HEAD and a first chunk, then one more chunk
    each time the test sets the next event, then the end; yields (port, connections)."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(HEAD + chunked(b"data: 1\n\n", end=False))
                for number, step in enumerate(steps, start=2):
                    await step.wait()
                    writer.write(chunked(b"data: %d\n\n" % number, end=False))
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await server.wait_closed()


async def test_a_body_is_handed_on_as_it_arrives_and_the_connection_reused_after_its_end() -> None:
    step = asyncio.Event()
    async with stepwise([step]) as (port, connections):
        client = Http1Pool(f"http://127.0.0.1:{port}/v1/chat/completions")
        try:
            for _ in range(2):
                step.clear()
                response = await client.stream(b"{}", 1 << 20)
                assert response.status == 200
                assert response.headers["content-type"] == "text/event-stream"
                assert await response.read() == b"data: 1\n\n"  # the rest is not sent yet
                assert response.read_nowait() == b""
                assert not response.ended
                step.set()
                assert await response.read() == b"data: 2\n\n"
                assert await response.read() == b""
                assert response.ended
                response.release()
        finally:
            await client.close()
    assert len(connections) == 1


async def test_a_stream_released_before_its_end_is_closed_not_reused() -> None:
    step = asyncio.Event()
    async with stepwise([step]) as (port, connections):
        client = Http1Pool(f"http://127.0.0.1:{port}/v1/chat/completions")
        try:
            response = await client.stream(b"{}", 1 << 20)
            assert await response.read() == b"data: 1\n\n"
            response.release()  # its end never came: the connection cannot be reused
            response.release()  # a second call does nothing
            again = await client.stream(b"{}", 1 << 20)
            assert await again.read() == b"data: 1\n\n"
            again.close()
            step.set()
        finally:
            await client.close()
    assert len(connections) == 2


async def read_all(response: Streamed) -> bytes:
    said = b""
    while more := await response.read():
        said += more
    return said


async def test_a_gzip_stream_is_decoded_as_it_comes() -> None:
    packed = gzip.compress(b"data: 1\n\ndata: [DONE]\n\n")
    head = HEAD.replace(b"\r\n\r\n", b"\r\ncontent-encoding: gzip\r\n\r\n")
    script = always(head + chunked(packed[:10], packed[10:]))
    async with scripted(script) as server, pool(server) as client:
        response = await client.stream(b"{}", 1 << 20)
        said = await read_all(response)
        response.release()
    assert said == b"data: 1\n\ndata: [DONE]\n\n"


async def test_a_body_cut_short_and_one_over_the_cap_fail_on_read() -> None:
    cut = always(HEAD + chunked(b"data: 1\n\n", end=False), close=True)
    async with scripted(cut) as server, pool(server) as client:
        response = await client.stream(b"{}", 1 << 20)
        with pytest.raises(BodyCut):
            await read_all(response)
        response.close()
    big = always(HEAD + chunked(b"x" * 600, b"y" * 600))
    async with scripted(big) as server, pool(server) as client:
        response = await client.stream(b"{}", 1000)
        with pytest.raises(TooLarge):
            await read_all(response)
        response.close()


async def test_a_body_delimited_by_the_close_ends_with_it() -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n"
    async with scripted(always(reply, close=True)) as server, pool(server) as client:
        response = await client.stream(b"{}", 1 << 20)
        said = await read_all(response)
        assert response.ended
        response.release()
    assert said == b"data: 1\n\n"


async def test_a_read_waits_only_until_its_deadline_and_the_stream_stays_readable() -> None:
    step = asyncio.Event()
    async with stepwise([step]) as (port, _):
        client = Http1Pool(f"http://127.0.0.1:{port}/v1/chat/completions")
        loop = asyncio.get_running_loop()
        try:
            response = await client.stream(b"{}", 1 << 20, 5.0)
            assert await response.read(loop.time()) == b"data: 1\n\n"  # here: no wait, no timer
            with pytest.raises(TimeoutError):
                await response.read(loop.time() + 0.05)
            step.set()
            assert await response.read(loop.time() + 5.0) == b"data: 2\n\n"
            assert await response.read(loop.time() + 5.0) == b""
            response.release()
        finally:
            await client.close()


async def test_a_head_that_does_not_come_in_time_fails_the_stream_and_frees_its_slot() -> None:
    silent = always(b"")  # reads the request, never answers
    async with scripted(silent) as server:
        client = Http1Pool(f"http://127.0.0.1:{server.port}/v1", max_connections=1)
        try:
            for _ in range(2):  # the one slot is given back each time
                with pytest.raises(TimeoutError):
                    await client.stream(b"{}", 1 << 20, 0.05)
        finally:
            await client.close()
    assert server.connections == 2  # a connection that timed out is never reused


async def test_a_streams_media_type_is_read_from_its_raw_head() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: Application/JSON; charset=utf-8\r\n"
    reply = head + b"content-type: text/plain\r\ncontent-length: 2\r\n\r\n{}"
    async with scripted(always(reply)) as server, pool(server) as client:
        response = await client.stream(b"{}", 1 << 20)
        assert response.media_type == "application/json"  # the first, without parameters
        assert response.headers["content-type"] == "Application/JSON; charset=utf-8"
        assert await read_all(response) == b"{}"
        response.release()
    untyped = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    async with scripted(always(untyped)) as server, pool(server) as client:
        response = await client.stream(b"{}", 1 << 20)
        assert response.media_type == ""
        response.close()
