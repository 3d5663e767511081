"""A lean HTTP/1.1 client for one upstream origin: keep-alive connections, POSTs answered
whole or read as they arrive (a stream).

A non-streamed member call is the gateway's hot path, and the HTTP client was the largest
part of it: against the instant upstream on loopback, one keep-alive POST costs about
280 µs of CPU through ``aiohttp.ClientSession`` (request and response objects, header
multidicts, payload and writer layers, a stream reader) and about 75 µs through an
asyncio protocol over httptools' C parser (the parser uvicorn serves with), which is what
:class:`Http1Pool` is. A stream (``Http1Pool.stream``) is the same exchange, its head
awaited and its body read as it arrives (:class:`Streamed`), decoded as it comes when
it is ``gzip``/``deflate``.

What it does: ``http://`` and ``https://`` (asyncio's TLS), a pool of keep-alive
connections (at most ``max_connections`` requests at once, the most recently used
connection first, one the upstream closed never reused), ``Content-Length``, chunked and
close-delimited bodies, a cap on the body's size checked as it arrives (the declared
length first), ``gzip``/``deflate`` bodies (none is asked for: no ``Accept-Encoding`` is
sent), informational (1xx) responses skipped. What it does not: redirects (a 3xx is
returned as it came), proxies, cookies, HTTP/2. Faults are raised as the exceptions below
(and ``OSError`` from connecting); :class:`~pinfactory.members.upstream.Upstream` turns
them into member errors. A connection whose exchange did not complete (a timeout, a
cancellation, a fault) is closed, never reused.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools


class Reply:
    """An upstream's response: ``status``, ``headers`` (lower-case names; the first of a
    repeated one; decoded from the raw pairs when first read) and the whole ``body``,
    decoded from ``gzip``/``deflate`` when it came so."""

    __slots__ = ("_headers", "body", "raw_headers", "status")

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.raw_headers = raw_headers
        self.body = body
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = {}
            for name, value in self.raw_headers:
                self._headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        return self._headers


class ConnectTimeout(TimeoutError):
    """No connection within the connect timeout."""


class BodyCut(ConnectionError):
    """The connection closed after the response began and before its end."""


class Garbled(ValueError):
    """What came back is not HTTP/1.1 (or an encoding that was not asked for)."""


class TooLarge(ValueError):
    """The body is over the cap; ``declared``: its declared length, when that said so."""

    def __init__(self, cap: int, declared: int | None = None) -> None:
        super().__init__(f"response over the {cap}-byte limit")
        self.cap = cap
        self.declared = declared


class Http1Pool:
    """Keep-alive HTTP/1.1 connections to the origin of ``url``, POSTing there.

    ``headers`` go with every request (``Content-Type: application/json`` unless they set
    one). ``post`` is a coroutine; ``close`` closes every connection. Raises ``ValueError``
    for a URL that is not ``http(s)://host[:port]/...`` or a header with a line break.
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] = {},
        *,
        max_connections: int = 100,
        connect_timeout_s: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        self.connect_timeout_s = connect_timeout_s
        authority = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None:
            authority += f":{parts.port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"content-type": ("Content-Type", "application/json")}
        for name, value in headers.items():
            sent[name.lower()] = (name, value)
        lines = [f"POST {target} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in sent.values()]
        for name, value in sent.values():
            if any(c in name or c in value for c in "\r\n\0"):
                raise ValueError(f"upstream header {name!r} holds a line break or NUL")
        head = "\r\n".join(lines)
        self._head = (head + "\r\nContent-Length: ").encode("latin-1")
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._busy: set[_Connection] = set()

    async def post(self, body: bytes, cap: int, timeout_s: float) -> Reply:
        """POST ``body``; the reply, its body at most ``cap`` bytes (:class:`TooLarge`),
        whole within ``timeout_s`` (``TimeoutError``), waiting for a free connection and
        connecting included.

        The common case (a connection free and open) arms one plain timer for the
        exchange, not a cancel scope: the timer fails the exchange itself."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        connection = await self._take(deadline)
        done = False
        try:
            reply = await connection.exchange(self._request(body), cap, deadline)
            done = True
        finally:
            self._give_back(connection, reuse=done)
        return reply

    async def stream(self, body: bytes, cap: int, timeout_s: float | None = None) -> Streamed:
        """POST ``body``; the response once its head is here (within ``timeout_s``,
        waiting for a free connection and connecting included, else ``TimeoutError``),
        its body read as it arrives (at most ``cap`` bytes, :class:`TooLarge`). The
        caller releases or closes it. Timed like :meth:`post`: one plain timer."""
        deadline = None if timeout_s is None else asyncio.get_running_loop().time() + timeout_s
        connection = await self._take(deadline)
        try:
            head = await connection.open_stream(self._request(body), cap, deadline)
        except BaseException:
            self._give_back(connection, reuse=False)
            raise
        return Streamed(self, connection, head)

    def _request(self, body: bytes) -> bytes:
        """The request's bytes: the head made once per pool, the length, ``body``."""
        return b"".join((self._head, str(len(body)).encode(), b"\r\n\r\n", body))

    async def _take(self, deadline: float | None) -> _Connection:
        """A free slot and an open connection for one exchange, marked busy, by
        ``deadline`` (the loop's clock; ``TimeoutError``). The caller releases the slot."""
        if self._slots.locked():  # every connection busy: the wait counts too
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            connection = self._reused()
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect()
        except BaseException:
            self._slots.release()
            raise
        self._busy.add(connection)
        return connection

    def _give_back(self, connection: _Connection, *, reuse: bool) -> None:
        """An exchange is over: the connection back to the pool (``reuse``, when its
        response ended on a keep-alive connection) or closed; its slot released."""
        self._busy.discard(connection)
        if reuse and connection.reusable():
            connection.stream = None
            self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()

    def _reused(self) -> _Connection | None:
        """The most recently used idle connection still open, if any."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl is not None else None,
                )
        except TimeoutError as exc:
            raise ConnectTimeout(f"no connection within {self.connect_timeout_s:g}s") from exc
        return connection

    async def close(self) -> None:
        """Close every connection (a request in flight fails with :class:`BodyCut` or a
        reset)."""
        for connection in (*self._idle, *self._busy):
            connection.close()
        self._idle.clear()
        self._busy.clear()


class Streamed:
    """A response whose body is read as it arrives (:meth:`Http1Pool.stream`).

    ``status`` and ``headers`` as in :class:`Reply`; :meth:`read` and :meth:`read_nowait`
    give the body's bytes (decoded) as they come; ``ended`` once all of it was read. Then
    :meth:`release` (the connection back to the pool if the body ended on a keep-alive
    connection, else closed) or :meth:`close`: one of them, once (later calls do nothing).
    """

    __slots__ = ("_connection", "_head", "_pool", "_stream", "status")

    def __init__(self, pool: Http1Pool, connection: _Connection, head: Reply) -> None:
        assert connection.stream is not None
        self._pool: Http1Pool | None = pool
        self._connection = connection
        self._stream = connection.stream
        self._head = head
        self.status = head.status

    @property
    def headers(self) -> dict[str, str]:
        return self._head.headers

    @property
    def media_type(self) -> str:
        """The ``content-type`` without its parameters, lower-case (``""`` for none),
        read from the raw head without decoding the rest of it."""
        for name, value in self._head.raw_headers:
            if len(name) == 12 and name.lower() == b"content-type":
                return value.partition(b";")[0].strip().lower().decode("latin-1")
        return ""

    @property
    def ended(self) -> bool:
        """The body's end came and everything before it was read."""
        return self._stream.ended and not self._stream.parts

    async def read(self, deadline: float | None = None) -> bytes:
        """The body's next bytes, waiting for them until ``deadline`` (the loop's clock;
        then ``TimeoutError``, the response still readable); ``b""`` at its end. Raises
        :class:`BodyCut`, :class:`TooLarge` or :class:`Garbled` for what went wrong.
        Bytes already here cost no timer."""
        return await self._stream.read(deadline)

    def read_nowait(self) -> bytes:
        """What arrived and was not read yet (``b""`` for nothing); raises as :meth:`read`."""
        return self._stream.read_nowait()

    def release(self) -> None:
        if self._pool is not None:
            self._pool._give_back(self._connection, reuse=self.ended)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool._give_back(self._connection, reuse=False)
            self._pool = None


class _Stream:
    """A streamed response's body as it arrives: what was not read yet, the end, a fault."""

    __slots__ = ("decoder", "ended", "error", "parts", "waiter")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ended = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.decoder: zlib._Decompress | None = None

    def feed(self, data: bytes) -> None:
        if self.decoder is not None:
            try:
                data = self.decoder.decompress(data)
            except zlib.error:
                self.fail(Garbled("a compressed stream that does not decompress"))
                return
        if data:
            self.parts.append(data)
            waiter = self.waiter  # the reader's wake-up, inline: it runs per piece of body
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def finish(self) -> None:
        if self.decoder is not None and (rest := self.decoder.flush()):
            self.parts.append(rest)
        self.ended = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if not self.ended and self.error is None:
            self.error = exc
            self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self, deadline: float | None = None) -> bytes:
        while not self.parts:
            if self.error is not None:
                raise self.error
            if self.ended:
                return b""
            loop = asyncio.get_running_loop()
            self.waiter = waiter = loop.create_future()
            timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
        return self.read_nowait()

    def read_nowait(self) -> bytes:
        if self.parts:
            data = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
            self.parts.clear()
            return data
        if self.error is not None:
            raise self.error
        return b""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time (``exchange``)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.waiter: asyncio.Future[Reply] | None = None
        self.keep_alive = False
        self.stream: _Stream | None = None  # the body being streamed, in a stream exchange
        self._reset(0)

    def _reset(self, cap: int) -> None:
        self.cap = cap
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.encoding: bytes | None = None
        self.parts: list[bytes] = []
        self.size = 0
        self.began = False  # any byte of this response arrived
        self.headed = False  # its head is complete
        self.delimited = False  # its end is marked (a length or chunks), not the close

    async def exchange(self, request: bytes, cap: int, deadline: float) -> Reply:
        """Send ``request``; its reply, whole by ``deadline`` (the loop's clock) or a
        ``TimeoutError`` (the connection is then closed)."""
        assert self.transport is not None
        self._reset(cap)
        self.keep_alive = False
        loop = asyncio.get_running_loop()
        self.stream = None
        self.waiter = loop.create_future()
        timer = loop.call_at(deadline, self._expire)
        try:
            self.transport.write(request)
            return await self.waiter
        finally:
            timer.cancel()

    def _expire(self) -> None:
        self._fail(TimeoutError("no whole response in time"))

    async def open_stream(self, request: bytes, cap: int, deadline: float | None) -> Reply:
        """Send ``request``; its response's head (the body goes to ``self.stream``) by
        ``deadline`` (the loop's clock; ``TimeoutError``, the connection then closed)."""
        assert self.transport is not None
        self._reset(cap)
        self.keep_alive = False
        self.stream = _Stream()
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        timer = None if deadline is None else loop.call_at(deadline, self._expire_head)
        try:
            self.transport.write(request)
            return await self.waiter
        finally:
            if timer is not None:
                timer.cancel()

    def _expire_head(self) -> None:
        self._fail(TimeoutError("no response head in time"))

    def reusable(self) -> bool:
        return self.keep_alive and not self.closed

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        elif self.stream is not None:
            self.stream.fail(exc)
        self.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        streaming = self.stream is not None and not self.stream.ended
        if (self.waiter is None or self.waiter.done()) and not streaming:
            self.close()  # nothing was asked: the connection is out of step
            return
        self.began = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Garbled(f"not an HTTP/1.1 response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost says what it meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, stream = self.waiter, self.stream
        if stream is not None and waiter is not None and waiter.done():  # streaming its body
            if self.headed and not self.delimited:  # a body that ends with the connection
                stream.finish()
            else:
                stream.fail(BodyCut("the upstream closed the connection mid-response"))
            return
        if waiter is None or waiter.done():
            return
        if self.headed and not self.delimited:  # a body that ends with the connection
            self._done()
        elif self.began:
            waiter.set_exception(BodyCut("the upstream closed the connection mid-response"))
        else:
            reset = ConnectionResetError("the upstream closed the connection")
            waiter.set_exception(reset if exc is None else exc)

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:
            return  # informational: the response follows
        self.headed = True
        length: bytes | None = None
        chunked = False
        for name, value in self.headers:  # the first of each, as Reply.headers reads them
            known = name.lower()
            if known == b"content-length" and length is None:
                length = value
            elif known == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
            elif known == b"content-encoding" and self.encoding is None:
                self.encoding = value.strip().lower()
        self.delimited = length is not None or chunked
        if length is not None and length.isdigit() and int(length) > self.cap:
            self._fail(TooLarge(self.cap, int(length)))
        elif self.stream is not None and self.waiter is not None and not self.waiter.done():
            encoding = self.encoding or b"identity"
            if encoding in (b"gzip", b"x-gzip", b"deflate"):
                self.stream.decoder = zlib.decompressobj(15 if encoding == b"deflate" else 47)
            elif encoding != b"identity":
                said = encoding.decode("latin-1")
                self._fail(Garbled(f"a {said!r}-encoded stream, which was not asked for"))
                return
            self.waiter.set_result(Reply(self.status, self.headers, b""))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.cap:
            self._fail(TooLarge(self.cap))
        elif self.stream is not None:
            self.stream.feed(body)
        elif self.waiter is not None and not self.waiter.done():
            self.parts.append(body)

    def on_message_complete(self) -> None:
        if not self.headed:  # the end of an informational response
            self.headers = []
            return
        self.keep_alive = self.parser.should_keep_alive()
        if self.stream is not None:
            self.stream.finish()
        else:
            self._done()

    def _done(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        body = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        try:
            if self.encoding is not None and self.encoding != b"identity":
                body = _decoded(body, self.encoding.decode("latin-1"), self.cap)
        except (Garbled, TooLarge) as exc:
            self._fail(exc)
            return
        waiter.set_result(Reply(self.status, self.headers, body))


def _expire(waiter: asyncio.Future[None]) -> None:
    """A stream's read waited past its deadline."""
    if not waiter.done():
        waiter.set_exception(TimeoutError("no bytes in time"))


def _decoded(body: bytes, encoding: str, cap: int) -> bytes:
    """``body`` without its content ``encoding`` (at most ``cap`` bytes once decoded)."""
    kind = encoding.lower()
    if kind not in ("gzip", "x-gzip", "deflate"):
        raise Garbled(f"a {encoding!r}-encoded body, which was not asked for")
    # gzip and zlib headers are told apart by zlib itself; raw deflate as a fallback
    wbits = 47 if kind != "deflate" else 15
    try:
        decoder = zlib.decompressobj(wbits)
        plain = decoder.decompress(body, cap + 1)
    except zlib.error:
        if kind != "deflate":
            raise Garbled("a gzip body that does not decompress") from None
        try:
            decoder = zlib.decompressobj(-15)
            plain = decoder.decompress(body, cap + 1)
        except zlib.error:
            raise Garbled("a deflate body that does not decompress") from None
    if len(plain) > cap:
        raise TooLarge(cap)
    return plain
