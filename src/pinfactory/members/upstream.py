"""The HTTP transport to one upstream: timeouts, retries, a circuit breaker and a size cap.

Members that call an OpenAI-compatible endpoint translate requests and responses
themselves (pure functions) and send through an :class:`Upstream`, which only moves
bytes and decides what a fault means:

- timeouts (:class:`Timeouts`): connecting, the first token (SSE comments do not count),
  the gap between two chunks, and the whole call, retries included. The member's
  ``timeout_s`` is the default of the first two and of the gap, and bounds a whole answer
  (retries included) and a stream's opening; a stream that keeps sending is cut only by a
  ``total_timeout_s`` set on purpose. Each timeout error names the limit that fired and
  its value;
- retries with exponential backoff and jitter (tenacity) on connection errors and HTTP
  408/409/429/5xx only, waiting out a ``Retry-After`` up to ``max_retry_after_s``; a
  stream is retried only until its first chunk, so nothing already sent to a client is
  ever sent twice;
- an upstream 429 that cannot be waited out is answered 429 with its ``Retry-After``;
- bodies and streams over ``max_response_bytes`` are cut and answered 502;
- a stream that ends without ``[DONE]`` or carries something that is not JSON fails;
- a :class:`~pinfactory.reliability.breaker.CircuitBreaker` per member.

Every fault becomes a :class:`MemberError` naming the member: 502, 504 on timeouts, 503
when the breaker is open, 429 for the upstream's rate limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import NamedTuple, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from pinfactory.errors import MemberError, MemberRejected, MemberTimeout
from pinfactory.members.http1 import BodyCut, ConnectTimeout, Http1Pool, Streamed, TooLarge
from pinfactory.reliability.breaker import BreakerSpec, CircuitBreaker, MemberUnavailable
from pinfactory.reliability.state import SharedState, open_state

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 429})
CALLERS_FAULT = {400: "invalid_request", 413: "payload_too_large", 422: "invalid_request"}
"""Upstream statuses that are the caller's fault (relayed as they are, as
:class:`MemberRejected`), each with the code said when the upstream gives none. A 401 or
403 is the gateway's key for the upstream, a 404 the member's model or URL (both set in
the team file, not by the caller): those are 502s."""
MiB = 1024 * 1024
BURST_TURNS = 2
"""Turns of the event loop a stream's chunks wait for the rest of their burst
(:meth:`_SSEReader.next_chunks`); each is taken only while the last brought more."""


class UpstreamSpec(BaseModel):
    """How a member talks to its upstream. Team-wide defaults in the team file's
    ``upstream:``; a member's own ``settings.upstream`` overrides them field by field.

    Times are seconds. ``None`` for the first-token and idle timeouts means the member's
    ``timeout_s``; ``None`` for the total means the member's ``timeout_s`` for a whole
    answer and a stream's opening (to its first chunk, retries included), and no limit
    on a stream that keeps sending (like httpx's read timeout, the idle timeout judges it).
    """

    model_config = ConfigDict(extra="forbid")

    connect_timeout_s: float = Field(default=5.0, gt=0)
    first_token_timeout_s: float | None = Field(default=None, gt=0)
    idle_timeout_s: float | None = Field(
        default=None, gt=0, description="longest gap between two stream chunks; null: timeout_s"
    )
    total_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="the whole call, retries included; null: timeout_s for a whole answer "
        "and for a stream's opening, no limit on a stream that keeps sending",
    )
    retries: int = Field(default=2, ge=0, le=10, description="extra attempts after the first")
    backoff_s: float = Field(default=0.05, ge=0, description="first backoff; doubles, jittered")
    backoff_max_s: float = Field(default=2.0, ge=0)
    max_retry_after_s: float = Field(
        default=5.0, ge=0, description="a longer Retry-After is passed on to the client"
    )
    max_response_bytes: int = Field(default=8 * MiB, gt=0)
    hold_stream_s: float = Field(
        default=0.0,
        ge=0,
        description="hold a stream's chunks this long (or to its end) before relaying any: "
        "a stream that breaks meanwhile is retried or falls back, at the cost of as much "
        "time to the first token; 0 relays each chunk as it comes",
    )
    breaker: BreakerSpec = BreakerSpec()
    state_url: str | None = Field(
        default=None, description="redis://... to share breaker state between workers"
    )
    state_namespace: str = Field(
        default="pf", description="key prefix there; the team loader sets pf:<team name>"
    )


class UpstreamFailed(MemberError):
    """The upstream failed one attempt; ``retryable`` when another attempt may succeed."""

    def __init__(
        self,
        member: str,
        message: str,
        *,
        status: int = 502,
        retryable: bool = False,
        retry_after_s: float | None = None,
        counts: bool = True,
    ) -> None:
        super().__init__(member, message, status=status, retry_after_s=retry_after_s)
        self.retryable = retryable
        self.should_retry = retryable  # x-should-retry: the client may try again later
        self.counts = counts  # a failure the breaker counts (not the upstream's rate limit)


class UpstreamTimeout(MemberTimeout):
    def __init__(self, member: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(member, message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Limit:
    """One configured timeout: its field's ``name`` (``timeout_s``: the member's own),
    ``seconds``, and ``inherited`` when the field was null and the member's ``timeout_s``
    stands in."""

    name: str
    seconds: float
    inherited: bool = False

    def __str__(self) -> str:
        """How an error names it: ``5s (idle_timeout_s, the member's timeout_s)``,
        ``1s (total_timeout_s)``, ``30s (the member's timeout_s)``."""
        if self.name == "timeout_s":
            return f"{self.seconds:g}s (the member's timeout_s)"
        source = ", the member's timeout_s" if self.inherited else ""
        return f"{self.seconds:g}s ({self.name}{source})"


class Timeouts(NamedTuple):
    """A member's resolved time limits (:class:`UpstreamSpec`'s, ``timeout_s`` filling in)."""

    first_token: Limit
    idle: Limit
    call: Limit  # a whole answer, or a stream to its first chunk, retries included:
    # total_timeout_s, else the member's timeout_s
    stream: Limit | None  # a stream from start to end; None: no limit while it sends

    @classmethod
    def of(cls, spec: UpstreamSpec, timeout_s: float) -> Timeouts:
        def limit(name: str, value: float | None) -> Limit:
            return Limit(name, timeout_s, True) if value is None else Limit(name, value)

        total = spec.total_timeout_s
        return cls(
            limit("first_token_timeout_s", spec.first_token_timeout_s),
            limit("idle_timeout_s", spec.idle_timeout_s),
            Limit("timeout_s", timeout_s) if total is None else Limit("total_timeout_s", total),
            None if total is None else Limit("total_timeout_s", total),
        )


class _Clock(NamedTuple):
    """When a call must end (``time.monotonic()``) and the limit that says so."""

    at: float
    limit: Limit | None

    @classmethod
    def start(cls, limit: Limit | None) -> _Clock:
        return cls(time.monotonic() + (limit.seconds if limit else float("inf")), limit)

    def window(self, each: Limit) -> tuple[float, Limit]:
        """The seconds one wait may take under ``each`` and this deadline, and the limit
        that fires first (what a timeout error names)."""
        left = self.at - time.monotonic()
        if self.limit is not None and left < each.seconds:
            return max(left, 0.0), self.limit
        return each.seconds, each


class UpstreamErrorBody(BaseModel):
    """The error object an OpenAI-compatible upstream answers a failure with:
    ``{"error": {"message", "type", "param", "code"}}``, or the object alone (vLLM),
    ``code`` a string or a number, every field optional."""

    model_config = ConfigDict(extra="ignore")

    message: str = ""
    type: str | None = None
    code: str | int | None = None
    param: str | None = None

    @classmethod
    def of(cls, body: bytes) -> UpstreamErrorBody | None:
        """The body's error object; None when the body is not one."""
        try:
            data = orjson.loads(body)
            if isinstance(data, dict) and "error" in data:
                data = data["error"]
            if isinstance(data, str):
                return cls(message=data)
            return cls.model_validate(data)
        except (ValueError, ValidationError):  # not JSON, not an error object
            return None

    def __str__(self) -> str:
        """``code: message`` (or as much of it as there is)."""
        return ": ".join(str(part) for part in (self.code, self.message) if part)


class Batch(NamedTuple):
    """The ``data:`` payloads one read of a stream completed; ``ended``: ``[DONE]``
    came with them (the stream has nothing more to wait for)."""

    chunks: list[bytes]
    ended: bool


@dataclass(frozen=True, slots=True)
class WholeBody:
    """A stream request answered with a plain JSON body (some upstreams ignore ``stream``)."""

    body: bytes


class Upstream:
    """POSTs JSON to one URL for one member. ``open`` in the app's lifespan, ``close`` after.

    ``post`` returns the answer's body; ``stream`` yields the SSE ``data:`` payloads in
    batches (a :class:`WholeBody` when the answer was not a stream).
    """

    def __init__(
        self,
        member: str,
        url: str,
        spec: UpstreamSpec,
        *,
        timeout_s: float,
        headers: Mapping[str, str] = {},
        max_connections: int = 100,
        state: SharedState | None = None,
    ) -> None:
        self.member = member
        self.url = url
        self.spec = spec
        self.headers = dict(headers)
        self.max_connections = max_connections
        self.timeouts = Timeouts.of(spec, timeout_s)
        self.idle_s = self.timeouts.idle.seconds
        self.state = state or open_state(spec.state_url, namespace=spec.state_namespace)
        self.breaker = CircuitBreaker(member, spec.breaker, self.state)
        self._pool: Http1Pool | None = None
        self._draining: dict[asyncio.Task[None], Streamed] = {}

    async def open(self) -> None:
        if self._pool is None:
            await self.state.open()
            self._pool = Http1Pool(
                self.url,
                self.headers,
                max_connections=self.max_connections,
                connect_timeout_s=self.spec.connect_timeout_s,
            )

    async def close(self) -> None:
        draining = dict(self._draining)
        for task in draining:
            task.cancel()
        await asyncio.gather(*draining, return_exceptions=True)
        for response in draining.values():  # a task cancelled before it ran too
            response.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.state.close()

    @property
    def pool(self) -> Http1Pool:
        """The connections answers are POSTed and streams read through (:mod:`.http1`)."""
        if self._pool is None:
            raise MemberError(self.member, "member is not open")
        return self._pool

    async def post(self, body: bytes) -> bytes:
        """The answer's body to ``body``, after retries; raises :class:`MemberError`."""
        clock = _Clock.start(self.timeouts.call)
        return await self._with_retries(lambda: self._post_once(body, clock), clock.at)

    async def stream(self, body: bytes) -> AsyncGenerator[Batch | WholeBody, None]:
        """The ``data:`` payloads until ``[DONE]``, in batches: each :class:`Batch` is
        what one read of the socket completed (at least one payload), so a consumer can
        handle chunks that arrived together at once, and says whether ``[DONE]`` came
        with it (nothing more to wait for); a :class:`WholeBody` when the answer was not
        a stream. Raises :class:`MemberError`.

        The first chunk comes within the first-token timeout, and with retries within
        the call's (:class:`Timeouts`); then each chunk within the idle timeout of the
        last, and the whole stream within ``total_timeout_s`` only when one is set. The
        idle timeout is armed only while waiting for the socket (a plain timer on
        the read, no cancel scope): payloads already read cost no timer of their own.
        After ``[DONE]`` the connection goes back to the pool once the body's end is
        read (at once when it came with ``[DONE]``, else in the background), so the next
        call need not open a new one.
        """
        whole = _Clock.start(self.timeouts.stream)
        opening = whole if self.timeouts.stream else _Clock.start(self.timeouts.call)
        reader, held = await self._with_retries(
            lambda: self._open_stream(body, opening, whole), opening.at
        )
        if isinstance(held, WholeBody):
            yield held
            return
        if reader is None:  # the stream ended while held
            if held:
                yield Batch(held, True)
            return
        ok = False
        try:
            if held:  # from the first chunk on the client may have bytes: no retries
                yield Batch(held, reader.done)
            loop = asyncio.get_running_loop()
            while not reader.done:
                wait, fires = whole.window(self.timeouts.idle)
                idle = fires is self.timeouts.idle
                stalled = Stall("no chunk within" if idle else "stream still sending at", fires)
                with self._faults("stream", stalled=stalled):
                    batch = await reader.next_chunks(loop.time() + wait)
                if batch:
                    yield Batch(batch, reader.done)
            ok = True
        except MemberError as exc:
            await self._failed(exc)
            raise
        finally:
            if ok:
                self._release(reader.response)
                await self.breaker.succeeded()
            else:
                reader.response.close()

    def _release(self, response: Streamed) -> None:
        """Give a finished stream's connection back to the pool: it is reused only once
        the body's end (the chunked encoding's last chunk) is read, which may come just
        after ``[DONE]``; then it is read in the background (anything after ``[DONE]``
        ignored), for at most the idle timeout."""
        try:
            response.read_nowait()  # anything after [DONE] is ignored
        except (OSError, ValueError):  # cut, over the cap, garbled: not reusable
            response.close()
            return
        if response.ended:
            response.release()
            return
        task = asyncio.get_running_loop().create_task(self._drain(response))
        self._draining[task] = response
        task.add_done_callback(self._drained)

    def _drained(self, task: asyncio.Task[None]) -> None:
        self._draining.pop(task, None)

    async def _drain(self, response: Streamed) -> None:
        """Read to the body's end, then release the connection; close it instead when the
        end does not come within the idle timeout (or the size cap), or the member closes."""
        until = asyncio.get_running_loop().time() + self.idle_s
        try:
            while await response.read(until):
                pass
        except (TimeoutError, OSError, ValueError):  # stalled, cut, over the cap, garbled
            pass
        finally:  # cancelled too (the member closing): never leave the connection open
            response.release()  # back to the pool only if the end came

    async def _with_retries(self, attempt: Callable[[], Awaitable[T]], deadline: float) -> T:
        """One attempt; on a retryable failure, more with backoff (tenacity) while time lasts."""
        try:
            return await attempt()  # the healthy path never builds a retrying object
        except MemberError as exc:
            if not self._should_retry(exc, deadline):
                raise
            first = exc
        backoff = wait_exponential_jitter(
            multiplier=self.spec.backoff_s, max=self.spec.backoff_max_s, jitter=self.spec.backoff_s
        )

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            after = failure.retry_after_s if isinstance(failure, MemberError) else None
            return max(backoff(state), after or 0.0)

        async def sleep(seconds: float) -> None:
            await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic() - 0.001)))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.spec.retries + 1),
            wait=wait,
            retry=retry_if_exception(
                lambda e: (
                    isinstance(e, MemberError) and not refused and self._should_retry(e, deadline)
                )
            ),
            sleep=sleep,
            reraise=True,
        )
        last, refused = first, False
        async for trial in retrying:
            with trial:
                if trial.retry_state.attempt_number == 1:
                    raise first  # the attempt already made: tenacity waits and judges it
                try:
                    return await attempt()
                except MemberUnavailable:
                    refused = True  # our own failures opened the breaker: say why, stop
                    raise last from None
                except MemberError as exc:
                    last = exc
                    raise
        raise last  # pragma: no cover - tenacity re-raises the last failure

    def _should_retry(self, exc: MemberError, deadline: float) -> bool:
        if self.spec.retries == 0 or not getattr(exc, "retryable", False):
            return False
        wait = exc.retry_after_s or 0.0
        if wait > self.spec.max_retry_after_s:
            return False
        return time.monotonic() + wait < deadline

    async def _post_once(self, body: bytes, clock: _Clock) -> bytes:
        await self.breaker.admit()
        try:
            wait, fires = clock.window(self.timeouts.first_token)
            with self._faults("body", stalled=Stall("no answer within", fires, retries=True)):
                reply = await self.pool.post(body, self.spec.max_response_bytes, wait)
            if reply.status >= 400:
                self._check_status(reply.status, reply.body, reply.headers)
        except MemberError as exc:
            await self._failed(exc)
            raise
        await self.breaker.succeeded()
        return reply.body

    async def _open_stream(
        self, body: bytes, opening: _Clock, whole: _Clock
    ) -> tuple[_SSEReader | None, list[bytes] | WholeBody]:
        """Send, check the status and read up to the first chunk (comments do not count);
        with ``hold_stream_s``, read on for that long or to the stream's end.

        (reader, the chunks read); (None, WholeBody) for a plain JSON answer, and
        (None, chunks) for a stream that ended (with ``[DONE]``) while read here.
        """
        await self.breaker.admit()
        response: Streamed | None = None
        try:
            limit, fires = opening.window(self.timeouts.first_token)
            first = asyncio.get_running_loop().time() + limit  # one deadline, plain timers
            with self._faults("stream", stalled=Stall("no token within", fires, retries=True)):
                response = await self.pool.stream(body, self.spec.max_response_bytes, limit)
                if response.status >= 400:
                    raw = await self._read_whole(response, first)
                    self._check_status(response.status, raw, response.headers)
                if response.media_type == "application/json":
                    plain = WholeBody(await self._read_whole(response, first))
                    response.release()
                    await self.breaker.succeeded()
                    return None, plain
                reader = _SSEReader(self.member, response, self.spec.max_response_bytes)
                held = await reader.next_chunks(first)
            if held and not reader.done and self.spec.hold_stream_s:
                await self._hold(reader, held, whole.at)
            if reader.done:  # the whole stream is here
                self._release(response)
                await self.breaker.succeeded()
                return None, held
            return reader, held
        except MemberError as exc:
            if response is not None:
                response.close()
            await self._failed(exc)
            raise

    async def _hold(self, reader: _SSEReader, held: list[bytes], deadline: float) -> None:
        """Read chunks into ``held`` for ``hold_stream_s`` or to the stream's end (each
        checked to be JSON, so a garbled one fails here, before anything was relayed). A
        stall ends the hold, not the stream (the idle timeout judges it)."""
        until = min(time.monotonic() + self.spec.hold_stream_s, deadline)
        with self._faults("stream", stalled="stalled while held"):
            for chunk in held:
                orjson.loads(chunk)
            loop = asyncio.get_running_loop()
            while not reader.done and (left := until - time.monotonic()) > 0:
                try:
                    batch = await reader.next_chunks(loop.time() + left)
                except TimeoutError:  # only the socket wait is timed: nothing read is lost
                    return
                for chunk in batch:
                    orjson.loads(chunk)
                held.extend(batch)

    async def _failed(self, exc: MemberError) -> None:
        """Count ``exc`` on the breaker when it is the member's fault."""
        if isinstance(exc, MemberRejected):  # the caller's fault
            return
        if getattr(exc, "counts", True) and exc.status not in (429, 503):
            await self.breaker.failed()

    @contextmanager
    def _faults(self, what: str, *, stalled: str | Stall) -> Iterator[None]:
        """The one place the client's (:mod:`.http1`) and the wire's faults become
        :class:`MemberError`."""
        try:
            yield
        except MemberError:
            raise
        except ConnectTimeout as exc:
            raise UpstreamTimeout(
                self.member,
                f"cannot connect within {self.spec.connect_timeout_s:g}s",
                retryable=True,
            ) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(self.member, str(stalled)) from exc
        except TooLarge as exc:
            size = f" of {exc.declared} bytes" if exc.declared is not None else ""
            raise UpstreamFailed(
                self.member, f"upstream response{size} is over the {exc.cap}-byte limit"
            ) from exc
        except BodyCut as exc:  # the connection closed mid-body
            ended = "stream ended without [DONE]" if what == "stream" else "body cut short"
            raise UpstreamFailed(
                self.member, f"{ended}: {type(exc).__name__}", retryable=True
            ) from exc
        except OSError as exc:  # connecting, or the connection reset
            broke = "stream broke" if what == "stream" else "cannot reach upstream"
            raise UpstreamFailed(
                self.member, f"{broke}: {type(exc).__name__}", retryable=True
            ) from exc
        except (ValueError, TypeError, AttributeError, KeyError, UnicodeError) as exc:
            said = "garbage" if what == "body" else f"a garbled {what}"
            raise UpstreamFailed(self.member, f"upstream sent {said}: {exc}") from exc

    @contextmanager
    def garbled(self, what: str) -> Iterator[None]:
        """Translation errors on what the upstream sent become a 502 naming the member."""
        try:
            yield
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            raise UpstreamFailed(self.member, f"upstream sent a garbled {what}: {exc}") from exc

    async def _read_whole(self, response: Streamed, deadline: float) -> bytes:
        """The rest of a streamed response's body by ``deadline`` (the loop's clock; the
        pool refuses it past the size cap)."""
        parts = []
        while more := await response.read(deadline):
            parts.append(more)
        return b"".join(parts)

    def _check_status(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise the :class:`MemberError` an HTTP error status means (:data:`CALLERS_FAULT`
        for what is relayed as it is); nothing below 400."""
        if status < 400:
            return
        said = UpstreamErrorBody.of(body)
        text = body[:200].decode(errors="replace").strip().replace("\n", " ")
        if status in CALLERS_FAULT:
            said = said or UpstreamErrorBody(message=text)
            raise MemberRejected(
                self.member,
                f"upstream refused the request (HTTP {status}): {said.message or text}",
                status=status,
                type_=said.type or "invalid_request_error",
                code=CALLERS_FAULT[status] if said.code is None else str(said.code),
                param=said.param,
            )
        detail = str(said) if said is not None and said.message else text
        if status in (401, 403):
            cause = "upstream refused the gateway's credentials for this member"
        elif status == 404:
            cause = "upstream has no such model or endpoint (the member's model, base_url)"
        else:
            cause = "upstream answered"
        retry_after = retry_after_seconds(headers.get("retry-after"))
        if status == 429:
            answer = 429
        elif status in (408, 504):
            answer = 504
        else:
            answer = 502
        raise UpstreamFailed(
            self.member,
            f"{cause}: HTTP {status}: {detail}",
            status=answer,
            retryable=status in RETRYABLE_STATUS or status >= 500,
            retry_after_s=retry_after,
            counts=status != 429 and (status >= 500 or status in (408, 409)),
        )


class _SSEReader:
    """The ``data:`` payloads of an event stream, a read's worth at a time; ``done``
    once ``[DONE]`` came (anything after it is ignored).

    Comments and other fields are skipped. An end without ``[DONE]`` or more than ``cap``
    bytes in all raise :class:`UpstreamFailed`.
    """

    def __init__(self, member: str, response: Streamed, cap: int) -> None:
        self.member = member
        self.response = response
        self.cap = cap
        self.buffer = b""
        self.size = 0
        self.done = False

    async def next_chunks(self, deadline: float | None = None) -> list[bytes]:
        """Every payload the buffer completes after reading until there is at least one
        (or ``[DONE]``), with the rest of their burst; ``[]`` only when the stream is done.
        ``TimeoutError`` when the socket brings none by ``deadline`` (the loop's clock, if any;
        what was read stays in the buffer).

        An upstream writes runs of chunks back to back (a fast model's tokens, the
        last token, the usage chunk and ``[DONE]``), each in a write of its own, so the
        first often arrives alone. What else of the run arrived while it was read joins
        it after one turn of the event loop (no timer, no waiting on the socket): the
        run costs one wake-up and one write to the client, not one each. A chunk that
        comes later (the next token of a model still generating) is not waited for.
        """
        chunks: list[bytes] = []
        while not chunks and not self.done:
            while b"\n" not in self.buffer:
                await self._read(deadline)
            self._take(chunks)
        response = self.response
        for _ in range(BURST_TURNS):
            if self.done:
                break
            more = response.read_nowait()
            if not more:
                await asyncio.sleep(0)  # one turn: the loop reads what is in the socket
                more = response.read_nowait()
                if not more:
                    break
            self._add(more)
            self._take(chunks)
        return chunks

    def _take(self, chunks: list[bytes]) -> None:
        """Move the buffer's complete lines' payloads into ``chunks``."""
        end = self.buffer.rfind(b"\n")
        if end < 0:
            return
        lines, self.buffer = self.buffer[:end].split(b"\n"), self.buffer[end + 1 :]
        for line in lines:
            if not line.startswith(b"data:"):
                continue  # blank separators, comments (": keep-alive"), event:/id: fields
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                self.buffer = b""
                return
            if data:
                chunks.append(data)

    async def _read(self, deadline: float | None) -> None:
        more = await self.response.read(deadline)
        if not more:
            raise UpstreamFailed(self.member, "stream ended without [DONE]", retryable=True)
        self._add(more)

    def _add(self, more: bytes) -> None:
        self.size += len(more)
        if self.size > self.cap:
            raise UpstreamFailed(self.member, f"upstream stream over the {self.cap}-byte limit")
        self.buffer += more


class Stall(NamedTuple):
    """What a timeout means, worded only when one fires (not on every call): ``words``,
    the :class:`Limit` that fired, and with ``retries`` a note when it was the whole
    call's (its retries included)."""

    words: str
    limit: Limit
    retries: bool = False

    def __str__(self) -> str:
        whole = self.retries and self.limit.name == "total_timeout_s"
        return f"{self.words} {self.limit}{'; retries included' if whole else ''}"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
