"""The lean HTTP/1.1 client (``members/http1.py``) against a real local server that answers
each request with scripted bytes: the body framings HTTP/1.1 allows, encodings, the size
cap, informational responses, connection reuse and the faults a wire can show."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from pinfactory.members.http1 import BodyCut, Garbled, Http1Pool, TooLarge

Script = Callable[[int, bytes], tuple[bytes, bool]]
"""(request number on the server, the request's bytes) -> (reply bytes, close after)."""

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@dataclass
class Scripted:
    """A TCP server on loopback: reads each whole request, answers with ``script``."""

    script: Script
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                reply, close = self.script(len(self.requests), request)
                writer.write(reply)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[Scripted]:
    server = Scripted(script)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        await listening.wait_closed()


@asynccontextmanager
async def pool(server: Scripted, **headers: str) -> AsyncIterator[Http1Pool]:
    client = Http1Pool(f"http://127.0.0.1:{server.port}/v1/chat/completions?x=1", headers)
    try:
        yield client
    finally:
        await client.close()


def always(reply: bytes, close: bool = False) -> Script:
    return lambda _n, _request: (reply, close)


async def test_a_post_sends_the_body_and_its_headers_and_reuses_the_connection() -> None:
    async with scripted(always(OK)) as server, pool(server, Authorization="Bearer k") as client:
        for _ in range(3):
            reply = await client.post(b'{"model": "m"}', 1024, 5.0)
            assert (reply.status, reply.body) == (200, b"{}")
            assert reply.headers["content-type"] == "application/json"
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Content-Type: application/json" in lines and b"Authorization: Bearer k" in lines
    assert b"Content-Length: 14" in lines and body == b'{"model": "m"}'


async def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    chunked = (
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{"a\r\n5\r\n": 1}\r\n0\r\n\r\n'
    )
    until_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + b"x" * 5000
    replies = {1: (chunked, False), 2: (until_close, True), 3: (OK, False)}
    async with scripted(lambda n, _: replies[n]) as server, pool(server) as client:
        assert (await client.post(b"{}", 1 << 20, 5.0)).body == b'{"a": 1}'
        assert (await client.post(b"{}", 1 << 20, 5.0)).body == b"x" * 5000
        assert (await client.post(b"{}", 1 << 20, 5.0)).body == b"{}"
    assert server.connections == 2  # the close-delimited body ended its connection


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
async def test_compressed_bodies_are_decoded(encoding: str) -> None:
    plain = b'{"text": "' + b"ok " * 1000 + b'"}'
    if encoding == "gzip":
        packed = gzip.compress(plain)
    elif encoding == "deflate":
        packed = zlib.compress(plain)
    else:
        squeeze = zlib.compressobj(wbits=-15)
        packed = squeeze.compress(plain) + squeeze.flush()
    name = encoding.split()[-1].encode()
    reply = (
        b"HTTP/1.1 200 OK\r\ncontent-encoding: " + name
        + b"\r\ncontent-length: " + str(len(packed)).encode() + b"\r\n\r\n" + packed
    )  # fmt: skip
    async with scripted(always(reply)) as server, pool(server) as client:
        assert (await client.post(b"{}", 1 << 20, 5.0)).body == plain
        with pytest.raises(TooLarge):  # the cap holds for the decoded body too
            await client.post(b"{}", 1000, 5.0)


async def test_an_encoding_not_asked_for_is_garbled() -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 2\r\n\r\n{}"
    async with scripted(always(reply)) as server, pool(server) as client:
        with pytest.raises(Garbled, match="'br'-encoded"):
            await client.post(b"{}", 1024, 5.0)


async def test_the_cap_refuses_a_declared_length_and_a_body_that_runs_over() -> None:
    declared = b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n" + b"x" * 4096
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n800\r\n" + b"y" * 2048
    replies = {1: declared, 2: chunked + b"\r\n800\r\n" + b"y" * 2048 + b"\r\n0\r\n\r\n"}
    async with scripted(lambda n, _: (replies[n], False)) as server, pool(server) as client:
        with pytest.raises(TooLarge) as first:
            await client.post(b"{}", 1024, 5.0)
        assert first.value.declared == 4096
        with pytest.raises(TooLarge) as second:
            await client.post(b"{}", 3000, 5.0)
        assert second.value.declared is None
    assert server.connections == 2  # a connection cut at the cap is never reused


async def test_informational_responses_are_skipped_and_a_redirect_is_returned_as_is() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + OK
    moved = b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /v2\r\ncontent-length: 0\r\n\r\n"
    replies = {1: early, 2: moved}
    async with scripted(lambda n, _: (replies[n], False)) as server, pool(server) as client:
        reply = await client.post(b"{}", 1024, 5.0)
        assert (reply.status, reply.body, "link" in reply.headers) == (200, b"{}", False)
        moved_reply = await client.post(b"{}", 1024, 5.0)
        assert (moved_reply.status, moved_reply.headers["location"]) == (307, "/v2")


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    async with scripted(always(OK, close=True)) as server, pool(server) as client:
        for _ in range(3):
            assert (await client.post(b"{}", 1024, 5.0)).body == b"{}"
            async with asyncio.timeout(5):  # until the server's close reaches the pool
                while any(not c.closed for c in client._idle):
                    await asyncio.sleep(0.01)
    assert server.connections == 3


async def test_a_body_cut_short_and_a_reset_before_any_byte() -> None:
    short = b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"half'
    replies = {1: (short, True), 2: (b"", True)}
    async with scripted(lambda n, _: replies[n]) as server, pool(server) as client:
        with pytest.raises(BodyCut):
            await client.post(b"{}", 1024, 5.0)
        with pytest.raises(ConnectionError) as caught:
            await client.post(b"{}", 1024, 5.0)
        assert not isinstance(caught.value, BodyCut)


async def test_not_http_is_garbled() -> None:
    not_http = always(b"SSH-2.0-OpenSSH\r\n\r\n", close=True)
    async with scripted(not_http) as server, pool(server) as client:
        with pytest.raises(Garbled, match=r"not an HTTP/1\.1 response"):
            await client.post(b"{}", 1024, 5.0)


async def cancelled(client: Http1Pool) -> None:
    async with asyncio.timeout(0.2):  # a cancel scope around the post, as a caller's
        await client.post(b"{}", 1024, 5.0)


@pytest.mark.parametrize("how", ["own timeout", "cancelled"])
async def test_an_exchange_cut_short_closes_its_connection(how: str) -> None:
    gate = asyncio.Event()

    async def slow_then_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n{}")
        await gate.wait()
        writer.write(OK)
        writer.close()

    listening = await asyncio.start_server(slow_then_ok, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    client = Http1Pool(f"http://127.0.0.1:{port}/")
    try:
        with pytest.raises(TimeoutError):
            await (client.post(b"{}", 1024, 0.2) if how == "own timeout" else cancelled(client))
        assert client._idle == [] and client._busy == set()  # closed, not pooled
    finally:
        gate.set()
        await client.close()
        listening.close()
        await listening.wait_closed()


async def test_refused_connections_raise_oserror() -> None:
    async with scripted(always(OK)) as server:
        port = server.port
    client = Http1Pool(f"http://127.0.0.1:{port}/")
    with pytest.raises(ConnectionRefusedError):
        await client.post(b"{}", 1024, 5.0)


@pytest.mark.parametrize(
    ("url", "headers", "says"),
    [
        ("ftp://host/x", {}, "not an http"),
        ("http:///nohost", {}, "not an http"),
        ("http://h/", {"x-a": "1\r\nx-b: 2"}, "line break"),
    ],
)
def test_bad_urls_and_header_injection_are_refused(
    url: str, headers: dict[str, str], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        Http1Pool(url, headers)
