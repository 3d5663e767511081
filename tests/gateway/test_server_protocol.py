"""``pinfactory serve``'s HTTP protocol (``GuardedHttpTools``) under a real uvicorn server on
loopback: a response leaves in one write with its head (a stream's with its first part
when that is ready in the same turn), a HEAD answer and ``100 Continue`` get theirs
unheld, and a request learns that its client hung up without a task of its own
(``Hangup``). A recording layer around the real
socket transport shows what the protocol wrote, call by call."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from pinfactory.gateway.departure import Departure, hangup_of
from pinfactory.gateway.server import GuardedHttpTools, free_port

WRITES: list[bytes] = []
LEFT: list[tuple[bool, bool]] = []  # (the departure saw the client leave, it used a task)


class Recorder:
    """The real transport, every write kept in ``WRITES`` as it passes."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def writelines(self, parts: Any) -> None:
        self.write(b"".join(parts))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RecordedProtocol(GuardedHttpTools):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(Recorder(transport))  # type: ignore[arg-type]


async def plain(request: Request) -> Response:
    await request.body()
    return PlainTextResponse("hello, whole")


async def streamed(request: Request) -> Response:
    slow = request.query_params.get("slow") == "1"

    async def parts() -> AsyncIterator[bytes]:
        if slow:  # the first part is not ready in the turn the head is written
            await asyncio.sleep(0.05)
        yield b"one"
        yield b"two"

    return StreamingResponse(parts(), media_type="text/plain")


async def waits(request: Request) -> Response:
    await request.body()
    departure = Departure(request.receive, hangup_of(request.scope))
    deadline = time.monotonic() + 5
    while not departure.left and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    LEFT.append((departure.left, departure._watcher is not None))
    departure.stop()
    return PlainTextResponse("nobody reads this")


APP = Starlette(
    routes=[
        Route("/plain", plain, methods=["GET", "POST", "HEAD"]),
        Route("/stream", streamed),
        Route("/wait", waits, methods=["POST"]),
    ]
)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        APP, host="127.0.0.1", port=port, http=RecordedProtocol, loop="uvloop",
        log_level="warning", lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def exchange(port: int, raw: bytes, until: bytes) -> bytes:
    """Send ``raw`` and read until ``until`` is in what came back."""
    WRITES.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        seen = b""
        while until not in seen:
            data = sock.recv(65536)
            assert data, f"closed before {until!r}: {seen!r}"
            seen += data
    return seen


def test_a_response_of_known_length_leaves_in_one_write(port: int) -> None:
    answer = exchange(port, b"GET /plain HTTP/1.1\r\nhost: x\r\n\r\n", b"hello, whole")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 12\r\n" in answer
    (write,) = WRITES
    assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\nhello, whole")


def test_a_stream_whose_first_part_is_ready_sends_it_with_the_head(port: int) -> None:
    exchange(port, b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n", b"0\r\n\r\n")
    head, _, first = WRITES[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
    assert first == b"3\r\none\r\n"
    assert WRITES[1:] == [b"3\r\ntwo\r\n", b"0\r\n\r\n"]


def test_a_stream_whose_first_part_is_slow_gets_its_head_at_once(port: int) -> None:
    exchange(port, b"GET /stream?slow=1 HTTP/1.1\r\nhost: x\r\n\r\n", b"0\r\n\r\n")
    head = WRITES[0]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert WRITES[1:] == [b"3\r\none\r\n", b"3\r\ntwo\r\n", b"0\r\n\r\n"]


def test_a_head_request_gets_its_head_unheld(port: int) -> None:
    answer = exchange(port, b"HEAD /plain HTTP/1.1\r\nhost: x\r\n\r\n", b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 12" in answer
    (write,) = WRITES
    assert write == answer


def test_100_continue_goes_out_before_the_body_is_sent(port: int) -> None:
    WRITES.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /plain HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"
        )
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hi")
        seen = b""
        while b"hello, whole" not in seen:
            seen += sock.recv(65536)
    assert WRITES[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert WRITES[1] == seen and len(WRITES) == 2


def test_a_request_learns_its_client_left_without_a_task(port: int) -> None:
    LEFT.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /wait HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
        time.sleep(0.1)  # the request is running (an early close is caught as well)
    deadline = time.monotonic() + 10
    while not LEFT and time.monotonic() < deadline:
        time.sleep(0.02)
    assert LEFT == [(True, False)]
