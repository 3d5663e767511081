"""A real OpenAI-compatible HTTP server that fails on purpose, for fault tests and load tests.

Every chat completion it answers is ``"echo: <last user message>"`` (so a client can check an
answer against what the upstream sent), unless a fault is chosen for the request:

- by header: ``x-fault: 500`` (tests that call it directly);
- by path: ``base_url = f"{url}/fault/429/v1"``; ``/fault/500*2/v1`` fails the first two
  requests on that path, then behaves (what a retry or a breaker test needs);
- at rates: ``FaultPlan(rates={Fault.RESET: 0.02, ...}, seed=1)`` (the load test).

It speaks HTTP/1.1 over raw asyncio sockets rather than through a framework, so it can do
what a framework would never let it: reset a connection, promise a body it never sends, drip
keep-alive comments, stream a body far larger than any buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson


class Fault(StrEnum):
    """What the upstream does to one request."""

    OK = "ok"
    SLOW = "slow"  # sleeps ``slow_s`` before answering at all
    RESET = "reset"  # reads the request, then resets the connection (TCP RST)
    RATE_LIMITED = "429"  # 429 with ``Retry-After: retry_after_s``
    SERVER_ERROR = "500"
    MALFORMED = "malformed"  # 200 with a body (or a stream chunk) that is not JSON
    TRUNCATED = "truncate"  # a stream that stops without [DONE]; a body shorter than promised
    KEEPALIVE = "keepalive"  # a stream of SSE comments and never a token
    STALL = "stall"  # a stream that sends one token, then goes silent
    OVERSIZED = "oversize"  # a body (or stream) of ``oversize_bytes``
    JSON_ON_STREAM = "json-on-stream"  # a plain JSON completion answering a stream request
    BAD_USAGE = "bad-usage"  # usage.prompt_tokens is a list, not a number
    DRIP = "drip"  # a healthy stream of a token every ``drip_s`` for ``hold_s``, then [DONE]
    # client errors, each with an OpenAI-shaped error body (:data:`CLIENT_ERRORS`)
    BAD_REQUEST = "400"  # context_length_exceeded, param messages
    UNAUTHORIZED = "401"  # the gateway's key for the upstream is wrong
    FORBIDDEN = "403"
    NOT_FOUND = "404"  # model_not_found, param model
    TOO_LARGE = "413"
    UNPROCESSABLE = "422"


@dataclass(frozen=True)
class FaultPlan:
    """How often each fault strikes when neither header nor path chooses one.

    ``rates`` are probabilities per request (their sum at most 1); ``seed`` makes a run
    repeatable. ``slow_s`` is how long SLOW sleeps, ``retry_after_s`` what a 429 says,
    ``oversize_bytes`` how much OVERSIZED sends, ``drip_s`` the gap between keep-alives
    and ``hold_s`` how long KEEPALIVE and STALL hold a stream open at most.
    """

    rates: Mapping[Fault, float] = field(default_factory=dict)
    seed: int = 0
    slow_s: float = 30.0
    retry_after_s: int = 1
    oversize_bytes: int = 64 * 1024 * 1024
    drip_s: float = 0.2
    hold_s: float = 30.0

    def __post_init__(self) -> None:
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")


CLIENT_ERRORS: dict[Fault, dict[str, Any]] = {
    Fault.BAD_REQUEST: {
        "message": "This model's maximum context length is 8 tokens; your messages had 12.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    },
    Fault.UNAUTHORIZED: {
        "message": "Incorrect API key provided.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    },
    Fault.FORBIDDEN: {
        "message": "This key may not use this model.",
        "type": "permission_error",
        "param": None,
        "code": None,
    },
    Fault.NOT_FOUND: {
        "message": "The model 'm' does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    },
    Fault.TOO_LARGE: {
        "message": "Request too large.",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_too_large",
    },
    Fault.UNPROCESSABLE: {
        "message": "'temperature' must be at most 2.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    },
}
"""The ``error`` object the upstream answers each client-error fault with (its status
is the fault's value)."""


def drip_answer(plan: FaultPlan) -> str:
    """What a :attr:`Fault.DRIP` stream says under ``plan``: ``"0 1 2 ... 14"``, one word a
    chunk, ``hold_s / drip_s`` of them."""
    return " ".join(str(i) for i in range(round(plan.hold_s / plan.drip_s)))


def echo_answer(text: str) -> str:
    """What the upstream answers a healthy request whose last user message is ``text``."""
    return f"echo: {text}"


class FaultUpstream:
    """The server. ``start`` binds 127.0.0.1 on a free port; ``served`` counts faults dealt."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.served: Counter[Fault] = Counter()
        self.requests = 0
        self._random = random.Random(self.plan.seed)
        self._per_path: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL of the healthy API, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def fault_url(self, fault: Fault | str, times: int | None = None, label: str = "") -> str:
        """A base URL on which every request (or the first ``times``) meets ``fault``.

        Requests are counted per URL; a ``label`` makes a URL (and its count) of its own.
        """
        return f"http://127.0.0.1:{self.port}/{self._spec(fault, times, label)}/v1"

    def hits(self, fault: Fault | str, times: int | None = None, label: str = "") -> int:
        """How many requests arrived on :meth:`fault_url`'s URL for these arguments."""
        return self._per_path[self._spec(fault, times, label)]

    @staticmethod
    def _spec(fault: Fault | str, times: int | None, label: str) -> str:
        spec = "fault/" + str(Fault(fault)) + (f"*{times}" if times is not None else "")
        return spec + (f"/{label}" if label else "")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def choose(self, path: str, headers: Mapping[str, str]) -> Fault:
        """The fault for one request: header, then path, then the plan's rates."""
        if "x-fault" in headers:
            return Fault(headers["x-fault"])
        if path.startswith("/fault/"):
            spec = path[1:].partition("/v1/")[0]
            name, _, times = spec.split("/")[1].partition("*")
            self._per_path[spec] += 1
            if times and self._per_path[spec] > int(times):
                return Fault.OK
            return Fault(name)
        draw = self._random.random()
        for fault, rate in self.plan.rates.items():
            if draw < rate:
                return fault
            draw -= rate
        return Fault.OK

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, path, headers = _parse_head(head)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                if method != "POST" or not path.endswith("/chat/completions"):
                    await _send(writer, 404, orjson.dumps({"error": {"message": "not found"}}))
                    continue
                fault = self.choose(path, headers)
                self.served[fault] += 1
                keep = await self._answer(writer, fault, body)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # the server is stopping: end quietly (asyncio logs a cancelled handler)
        finally:
            if not writer.is_closing():
                writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, fault: Fault, raw: bytes) -> bool:
        """Answer one request; False when the connection must not be reused."""
        payload = orjson.loads(raw) if raw else {}
        stream = bool(payload.get("stream"))
        model = str(payload.get("model") or "fault")
        text = echo_answer(_last_user(payload))
        plan = self.plan
        if fault is Fault.SLOW:
            await asyncio.sleep(plan.slow_s)
        if fault is Fault.RESET:
            _reset(writer)
            return False
        if fault is Fault.RATE_LIMITED:
            error = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit"}})
            await _send(writer, 429, error, {"retry-after": str(plan.retry_after_s)})
            return True
        if fault in CLIENT_ERRORS:
            await _send(writer, int(fault), orjson.dumps({"error": CLIENT_ERRORS[fault]}))
            return True
        if fault is Fault.SERVER_ERROR:
            await _send(writer, 500, orjson.dumps({"error": {"message": "upstream broke"}}))
            return True
        if fault is Fault.JSON_ON_STREAM or (not stream and fault is not Fault.OVERSIZED):
            return await self._whole(writer, fault, model, text)
        return await self._stream(writer, fault, model, text, stream)

    async def _whole(
        self, writer: asyncio.StreamWriter, fault: Fault, model: str, text: str
    ) -> bool:
        body = orjson.dumps(completion_body(model, text, bad_usage=fault is Fault.BAD_USAGE))
        if fault is Fault.MALFORMED:
            body = b'{"id": "chatcmpl-x", "choices": [{"message": '
        if fault is Fault.TRUNCATED:
            writer.write(_head(200, len(body), {"content-type": "application/json"}))
            writer.write(body[: len(body) // 2])
            await writer.drain()
            return False
        await _send(writer, 200, body)
        return True

    async def _stream(
        self, writer: asyncio.StreamWriter, fault: Fault, model: str, text: str, stream: bool
    ) -> bool:
        plan = self.plan
        if fault is Fault.OVERSIZED and not stream:
            writer.write(_head(200, plan.oversize_bytes, {"content-type": "application/json"}))
            await _drip_bytes(writer, plan.oversize_bytes, b" ")
            return True
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        if fault is Fault.KEEPALIVE:
            await _hold(writer, plan.hold_s, plan.drip_s)
            return False
        if fault is Fault.OVERSIZED:
            line = b"data: " + orjson.dumps(_chunk(model, "x" * 1000)) + b"\n\n"
            await _drip_bytes(writer, plan.oversize_bytes, line, chunked=True)
            return False
        if fault is Fault.DRIP:
            text = drip_answer(plan)
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1].rstrip(" ")
        for index, word in enumerate(words):
            if fault is Fault.MALFORMED and index == 1:
                writer.write(_chunked(b"data: {broken json\n\n"))
                break
            if fault is Fault.TRUNCATED and index == max(1, len(words) // 2):
                break
            writer.write(_chunked(b"data: " + orjson.dumps(_chunk(model, word)) + b"\n\n"))
            await writer.drain()
            if fault is Fault.DRIP:
                await asyncio.sleep(plan.drip_s)
            if fault is Fault.STALL:
                await _hold(writer, plan.hold_s, plan.hold_s)
                return False
        else:
            usage = _usage(5, len(words), bad=fault is Fault.BAD_USAGE)
            tail = {**_chunk(model, None, finish="stop"), "usage": usage}
            writer.write(_chunked(b"data: " + orjson.dumps(tail) + b"\n\n"))
            writer.write(_chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
            return True
        await writer.drain()
        return False  # the stream ends with the connection: no [DONE], no last chunk


def completion_body(model: str, text: str, *, bad_usage: bool = False) -> dict[str, Any]:
    """A chat completion answering with ``text``."""
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": _usage(5, len(text.split()), bad=bad_usage),
    }


def _usage(prompt: int, completion: int, *, bad: bool) -> dict[str, Any]:
    return {
        "prompt_tokens": [prompt] if bad else prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chunk(model: str, content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _last_user(payload: Mapping[str, Any]) -> str:
    for message in reversed(payload.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


def _head(status: int, length: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"content-length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter, status: int, body: bytes, headers: Mapping[str, str] = {}
) -> None:
    writer.write(_head(status, len(body), {"content-type": "application/json", **headers}))
    writer.write(body)
    await writer.drain()


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _drip_bytes(
    writer: asyncio.StreamWriter, total: int, piece: bytes, *, chunked: bool = False
) -> None:
    """Send ``total`` bytes made of ``piece``, 64 KiB at a time, never holding them all."""
    block = piece * max(1, 65536 // len(piece))
    sent = 0
    while sent < total:
        data = block[: total - sent]
        writer.write(_chunked(data) if chunked else data)
        sent += len(data)
        await writer.drain()


async def _hold(writer: asyncio.StreamWriter, hold_s: float, every_s: float) -> None:
    """Keep the stream open for ``hold_s``, sending an SSE comment every ``every_s``."""
    loop = asyncio.get_running_loop()
    until = loop.time() + hold_s
    while loop.time() < until:
        writer.write(_chunked(b": keep-alive\n\n"))
        await writer.drain()
        await asyncio.sleep(every_s)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.contextmanager
def fault_upstream(plan: FaultPlan | None = None) -> Iterator[FaultUpstream]:
    """Run a :class:`FaultUpstream` on its own thread and event loop; stop it on exit."""
    upstream = FaultUpstream(plan)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(upstream.start())
        started.set()
        loop.run_forever()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(upstream.stop())
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=run, name="fault-upstream", daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("fault upstream did not start")
    try:
        yield upstream
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
