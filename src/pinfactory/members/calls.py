"""Every member call made for a request, booked on the request's tab.

A request opens a :class:`Tab` (the pipeline does, one per request) and
every member call made on its behalf goes through :func:`call_member` or
:func:`stream_member`, wherever it happens: the answering member, a
composite's inner members (fallback, cascade tiers, cross-check), the
verifiers' second opinions and samples, an escalation. Each call is timed,
bounded by the member's ``timeout_s`` and booked as a :class:`MemberCall`
(member, purpose, tokens, cost, latency), failed calls included with the
usage they produced. The ledger row's cost and tokens are the tab's sums, so
nothing a request spent can be missed by the books.

The tab rides in a :mod:`contextvars` variable: a member made of members
books its inner calls without being handed the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from pinfactory.errors import ClientGone, MemberError, MemberTimeout, PinfactoryError, unexpected
from pinfactory.members.base import Completion, Delta, Deltas, Member, StreamEvent, Usage
from pinfactory.request import Request, estimate_tokens
from pinfactory.verify.events import Event

Purpose = Literal[
    "answer", "tier", "fallback", "cross_check", "sample", "escalation", "held", "cache"
]
"""Why a member was called: to answer, as a cascade tier or fallback alternative, as the
verifiers' cross-check or self-consistency sample, as an escalation target, or to run a
request a reviewer approved; ``cache``: not called, its stored answer reused at no cost."""


@dataclass(frozen=True, slots=True)
class MemberCall:
    """One call of one member for a request: tokens, cost (USD) and latency (ms).

    ``error`` is the error code when the call failed; its usage is what was
    produced before it did (counted tokens of a broken stream, else zero).
    """

    member: str
    purpose: Purpose
    usage: Usage
    cost_usd: Decimal
    latency_ms: float
    model: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "member": self.member,
            "purpose": self.purpose,
            "model": self.model,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": format(self.cost_usd, "f"),
            "latency_ms": round(self.latency_ms, 3),
            "error": self.error,
        }


def total_usage(calls: Sequence[MemberCall]) -> Usage:
    """The tokens of several calls together."""
    return Usage(
        sum(c.usage.input_tokens for c in calls), sum(c.usage.output_tokens for c in calls)
    )


Prepare = Callable[[Member, Request], Request]
"""What a request goes through before each member sees it (the verifiers' input guards:
size limits, injection screening, PII redaction for remote members). May raise."""


@dataclass(slots=True)
class Tab:
    """The calls one request made so far, in order, and how each call's input is prepared.

    ``prepare`` runs first, then the request is held to the member's configured
    ``max_output_tokens`` (sent upstream as ``max_tokens``), so what a call can
    cost is bounded by what spend limits reserved for it.
    """

    calls: list[MemberCall] = field(default_factory=list)
    prepare: Prepare | None = None
    events: list[Event] = field(default_factory=list)
    """What members made of members noticed (a cross-check's disagreement)."""
    trail: list[str] = field(default_factory=list)
    """How members made of members got to the answer (a cascade's tiers tried, and why)."""
    streams: list[MemberStream] = field(default_factory=list)
    """Streams opened for the request and not booked yet (a stream leaves once booked:
    it holds the tab, so keeping it would make a reference cycle per stream, garbage
    only the cyclic collector frees)."""

    def book(self, call: MemberCall) -> None:
        self.calls.append(call)

    def abandon(self, code: str = "client_closed_request") -> None:
        """The consumer left: book every stream still open with what it produced. Never
        awaits (it runs while the request is being torn down)."""
        for stream in tuple(self.streams):  # each leaves the list as it is booked
            stream.abandon(code)


_TAB: ContextVar[Tab | None] = ContextVar("pinfactory_tab", default=None)


def open_tab(prepare: Prepare | None = None) -> Tab:
    """A fresh tab for the request running in this context (and the tasks it starts)."""
    tab = Tab(prepare=prepare)
    _TAB.set(tab)
    return tab


def current_tab() -> Tab:
    """The running request's tab; a throwaway one outside a request (the lab, tests)."""
    tab = _TAB.get()
    return tab if tab is not None else open_tab()


async def call_member(
    member: Member, request: Request, purpose: Purpose = "answer", tab: Tab | None = None
) -> Completion:
    """Call ``member`` within its timeout and book the call on ``tab`` (default: the
    running request's); failures are booked too.

    Raises :class:`MemberTimeout` past ``member.timeout_s`` (a member that
    ``times_its_calls`` raises its own), and whatever :class:`PinfactoryError` the
    member raises.
    """
    tab = tab or current_tab()
    request = _prepared(tab, member, request)
    started = time.perf_counter()
    try:
        if member.times_its_calls:  # its own limits bound it: no second timer
            completion = await member.complete(request)
        else:
            async with asyncio.timeout(member.timeout_s):  # every other member, tools too
                completion = await member.complete(request)
    except TimeoutError as exc:
        failure = MemberTimeout(
            member.name, f"no answer within {member.timeout_s:g}s (the member's timeout_s)"
        )
        _book_failed(tab, member, purpose, Usage(), started, failure)
        raise failure from exc
    except PinfactoryError as exc:
        _book_failed(tab, member, purpose, Usage(), started, exc)
        raise
    except asyncio.CancelledError:  # the client left: the prompt was sent, so it is paid
        cancelled = ClientGone(member.name, "call cancelled")
        _book_failed(tab, member, purpose, Usage(request.prompt_tokens, 0), started, cancelled)
        raise
    except Exception:  # a plug-in's own bug: booked, then the pipeline reports it (500)
        _book_failed(tab, member, purpose, Usage(), started, PinfactoryError("plug-in error"))
        raise
    if not member.books_itself:
        tab.book(
            MemberCall(
                member.name,
                purpose,
                completion.usage,
                completion.cost_usd,
                _ms(started),
                completion.model,
            )
        )
    return completion


class MemberStream:
    """A member's stream (text deltas, then the :class:`Completion`), booked on the tab.

    Iterate it like ``member.stream(request)``. However the stream ends, the
    call is booked exactly once, with the usage produced so far (the tokens of
    the text streamed, counted) when it did not end with a completion:

    - the member fails, or stalls past ``timeout_s`` between deltas (a member that
      times its own stream, ``Member.times_its_stream``, by its own limits): booked,
      then the error is raised (a plug-in's own exception becomes the 500
      :class:`PinfactoryError` of :func:`~pinfactory.errors.unexpected`);
    - the consumer stops reading (a client that left): it calls
      :meth:`abandon`, which books at once without awaiting, then
      :meth:`aclose` to release the member's connection.
    """

    def __init__(
        self, member: Member, request: Request, purpose: Purpose = "answer", tab: Tab | None = None
    ) -> None:
        self.tab = tab or current_tab()
        request = _prepared(self.tab, member, request)
        self.member, self.request, self.purpose = member, request, purpose
        self.parts: list[str] = []
        self.booked = member.books_itself  # a composite's parts book themselves
        self._started = time.perf_counter()
        self._ready = False
        self._timed = not member.times_its_stream
        self._events = member.stream(request).__aiter__()
        if not self.booked:
            self.tab.streams.append(self)

    def __aiter__(self) -> MemberStream:
        return self

    async def __anext__(self) -> StreamEvent:
        member = self.member
        try:
            if self._ready or not self._timed:  # the next event is here, or the member
                event = await anext(self._events)  # times its stream itself: no timer
            else:
                async with asyncio.timeout(member.timeout_s):
                    event = await anext(self._events)
        except StopAsyncIteration:
            if not self.booked:  # a member's stream must end with its Completion
                failure = MemberError(member.name, "stream ended without a completion")
                self._book_partial(failure)
                raise failure from None
            raise
        except TimeoutError as exc:
            failure = MemberTimeout(
                member.name, f"no event within {member.timeout_s:g}s (the member's timeout_s)"
            )
            self._book_partial(failure)
            raise failure from exc
        except PinfactoryError as exc:
            self._book_partial(exc)
            raise
        except Exception as exc:  # a plug-in member's own bug: an internal error (500)
            internal = unexpected(exc, self.request.request_id)
            self._book_partial(internal)
            raise internal from exc
        self._ready = False
        if isinstance(event, str):
            self.parts.append(event)
        elif isinstance(event, Delta):
            self.parts.append(event.text)
            self._ready = event.more
        elif isinstance(event, Deltas):
            self.parts += [delta.text for delta in event.deltas]
            self._ready = event.more
        elif not self.booked:
            self._booked()
            self.tab.book(
                MemberCall(
                    member.name,
                    self.purpose,
                    event.usage,
                    event.cost_usd,
                    _ms(self._started),
                    event.model,
                )
            )
        return event

    def abandon(self, code: str = "client_closed_request") -> None:
        """Book what was streamed so far, priced as produced; idempotent, never awaits."""
        if not self.booked:
            self._booked()
            usage = _so_far(self.request, self.parts)
            self.tab.book(
                MemberCall(
                    self.member.name,
                    self.purpose,
                    usage,
                    self.member.price.cost(usage),
                    _ms(self._started),
                    error=code,
                )
            )

    async def aclose(self) -> None:
        """Stop the member's stream (closes its upstream connection)."""
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(PinfactoryError, RuntimeError):  # broken: booked already
                await aclose()

    def _booked(self) -> None:
        self.booked = True
        self.tab.streams.remove(self)

    def _book_partial(self, error: PinfactoryError) -> None:
        if not self.booked:
            self._booked()
            usage = _so_far(self.request, self.parts)
            _book_failed(self.tab, self.member, self.purpose, usage, self._started, error)


def _prepared(tab: Tab, member: Member, request: Request) -> Request:
    if tab.prepare is not None:
        request = tab.prepare(member, request)
    cap = member.max_output_tokens
    if cap is None or (request.max_tokens is not None and request.max_tokens <= cap):
        return request
    return replace(request, max_tokens=cap)  # the member sends it upstream: enforced there


def _so_far(request: Request, parts: list[str]) -> Usage:
    return Usage(request.prompt_tokens, estimate_tokens("".join(parts))) if parts else Usage()


def _book_failed(
    tab: Tab,
    member: Member,
    purpose: Purpose,
    usage: Usage,
    started: float,
    error: PinfactoryError,
) -> None:
    """Book a failed call: charged for the tokens it produced, nothing when it produced
    none. A composite's failure is its parts', booked by them."""
    if member.books_itself:
        return
    cost = member.price.cost(usage) if usage.total_tokens else Decimal(0)
    tab.book(MemberCall(member.name, purpose, usage, cost, _ms(started), error=error.code))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
