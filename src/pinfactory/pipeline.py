"""Composes the stages for one request, inside one failure boundary.

    check      input the ledger cannot store is refused (400) before anything runs
    route      the router's decision, then the unit's quotas and budgets
    call       the decided member (a composite calls its own members); guards first
    verify     verdict and confidence; escalate, caveat or mark for review
    hold       answers escalated to a person wait in the review queue
    record     ledger row and audit chain in one commit, then traces and metrics

Every member call made for a request, wherever it happens, is booked on the
request's tab (``members.calls``); the typed outcome (``outcome.Answer`` or
``outcome.Failure``) carries them, and what the request cost is their sum.

:meth:`Pipeline.complete` and :meth:`Pipeline.stream` are the failure
boundary: whatever fails, and whenever (before routing, in a member,
mid-stream, in a verifier, in the ledger, or the client leaving), the request
ends in exactly one ledger row and one sealed chain segment. The gateway
records through :meth:`Pipeline.record_failure` only what fails before a
request exists (a bad key, an unparsable body).

:func:`open_pipeline` opens a team's members and ledger (the only I/O) and
yields a :class:`Pipeline`; the gateway and the CLI both answer through it,
so ``pinfactory ask`` routes exactly as the server does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Mapping
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol

from pinfactory.cache import Hit, ResponseCache
from pinfactory.capabilities import Eligibility
from pinfactory.deferred import Deferred
from pinfactory.errors import (
    ClientGone,
    LedgerError,
    PinfactoryError,
    RequestError,
    UnknownModel,
    unexpected,
)
from pinfactory.ledger import Ledger, open_ledger
from pinfactory.ledger.base import Review
from pinfactory.ledger.events import entry_of, events_of
from pinfactory.ledger.queued import queue_request, run_approved
from pinfactory.ledger.reviews import ReviewQueue
from pinfactory.members import Completion, Member, member_class
from pinfactory.members.base import Delta, Deltas, Usage, replay
from pinfactory.members.calls import MemberCall, MemberStream, Tab, call_member, open_tab
from pinfactory.members.composite import Composite
from pinfactory.observe import Observers, Timeline, stage
from pinfactory.observe.build import build_observers
from pinfactory.observe.timeline import stage_end, stage_start
from pinfactory.outcome import Answer, Failure, Outcome
from pinfactory.request import Request, check_storable, storable
from pinfactory.routing import ComposingRouter, Decision, Learner, Router, build_router
from pinfactory.spend import QuotaQueued, Spend, build_spend
from pinfactory.team import Team
from pinfactory.verify.stage import VerifyStage, escalation_target

__all__ = ["Answer", "Failure", "Pipeline", "build_members", "open_pipeline"]


class Pipeline:
    """Route, call and record one request. Holds no I/O of its own."""

    def __init__(
        self,
        team: Team,
        members: Mapping[str, Member],
        router: Router,
        ledger: Ledger,
        observers: Observers | None = None,
        spend: Spend | None = None,
    ) -> None:
        self.team = team
        self.members = with_composites(members, router)
        self.router = router
        self.ledger = ledger
        self.spend = spend or build_spend(team, ledger, self.worst_case, reach=self.reach)
        self.reviews = ReviewQueue(ledger, team.spec.reviews)
        self.observers = observers or Observers()
        self._tasks: set[asyncio.Task[None]] = set()
        spec = team.spec.verification
        self.verification = VerifyStage(spec) if spec is not None else None
        self._may_cite = any(member.cites for member in self.members.values())  # parts too
        self.eligibility = Eligibility(self.members, team.spec.drop_unsupported)
        cache = team.spec.cache
        self.cache = ResponseCache(cache) if cache is not None else None

    def _prepare(self, member: Member, request: Request) -> Request:
        """The request as ``member`` gets it: input guards (size, injection, PII before
        remote members), less what it cannot serve and the team drops."""
        if self.verification is not None and request.endpoint == "chat":
            request = self.verification.guard_input(member, request)
        return self.eligibility.fit(member, request)

    def worst_case(self, member: str, request: Request) -> Decimal:
        """The most ``request`` can cost when ``member`` answers it, in USD: the member
        at its output cap, plus every call verification may add (cross-check, samples,
        escalation). Spend limits reserve this before anything is called."""
        answering = self.members.get(member)
        if answering is None:
            return Decimal(0)
        total = answering.worst_case_usd(request)
        spec = self.team.spec.verification
        if spec is None or request.endpoint != "chat":
            return total
        extra: list[Member | None] = [self.members.get(spec.cross_check or "")]
        sampling = spec.self_consistency
        if sampling is not None and member in sampling.members:
            extra += [answering] * sampling.samples
        if spec.on_low_confidence == "escalate":
            extra.append(escalation_target(spec.escalate_to, self.members, exclude=member))
        return total + sum((m.worst_case_usd(request) for m in extra if m is not None), Decimal(0))

    def decide(self, request: Request) -> Decision:
        """Which member answers: the pinned member, else the router for ``auto`` (or the
        team's name, when no member has it)."""
        member = self.members.get(request.model)
        if member is None and request.model in ("auto", "", self.team.name):
            if request.endpoint != "chat":  # the routers route answers: the cheapest able
                return self._cheapest(request)
            return self.eligibility.choose(request, self.router.decide(request))
        if member is None:
            available = ", ".join(["auto", *self.members])
            raise UnknownModel(
                f"unknown model '{request.model}'; available: {available}", param="model"
            )
        pinned = Decision(
            member=member.name,
            reason=f"pinned by the request (model='{member.name}')",
            router="pinned",
            scores={member.name: 1.0},
            tier=member.tier,
            estimated_cost_usd=member.price.estimate(request.prompt_tokens),
        )
        return self.eligibility.choose(request, pinned)

    def _cheapest(self, request: Request) -> Decision:
        able = self.eligibility.able(request)
        if not able:
            raise self.eligibility.unable(request)
        member = able[0]
        return Decision(
            member=member.name,
            reason=f"the cheapest member serving {request.endpoint}",
            router="endpoint",
            scores={m.name: 1.0 for m in able},
            tier=member.tier,
            estimated_cost_usd=member.worst_case_usd(request),
        )

    async def route(self, request: Request) -> Decision:
        """The decision to carry out, after the spend limits had their say (``spend.py``:
        the request's worst case reserved, or downgraded, queued or refused)."""
        decision = self.decide(request)
        if self.spend.active:  # none configured: skip the step entirely
            decision = await self.spend.admit(request, decision)
        return decision

    def reach(self, member: str) -> tuple[str, ...]:
        """The members a call to ``member`` may end up calling (a composite's leaves)."""
        found = self.members.get(member)
        if isinstance(found, Composite):
            return tuple(leaf.name for leaf in found.leaves())
        return (member,)

    async def complete(
        self,
        request: Request,
        started: float | None = None,
        left: Leaving | None = None,
        deferred: Deferred | None = None,
    ) -> Answer:
        """Answer one request and record it; every failure is recorded, then raised.

        ``left`` tells whether the client has hung up (the gateway's
        :class:`~pinfactory.gateway.departure.Departure`). Nothing uses an answer whose
        client left (not the cache, not a stored response), so when it leaves while the
        answer is made (its member's call, its verification) that work is cancelled:
        each cancelled call is booked with the prompt's tokens, counted, at its member's
        price (:func:`~pinfactory.members.calls.call_member`), and the request as
        :class:`ClientGone` (499) with every call's usage and cost, raised as such; so
        is a request that failed (a member's timeout...) after its client left. Raises
        the :class:`PinfactoryError` the request failed with (anything else is reported
        as a 500 :class:`PinfactoryError`).
        ``deferred``: what the answer's observers (metrics, traces, the access log) are
        told goes there, for after the response (:mod:`pinfactory.deferred`); the row is
        recorded before this returns either way.
        """
        started = time.perf_counter() if started is None else started
        Timeline.begin(started)
        tab = open_tab(self._prepare)
        decision: Decision | None = None
        try:
            check_storable(request)
        except RequestError:
            await self._check(request, started)  # records the refusal and raises it
        try:
            with stage("route"):  # no spend limits: nothing to await
                decision = await self.route(request) if self.spend.active else self.decide(request)
            with stage("call"), _cancelled_on_leave(left, decision.member):
                hit = await self._cached(request, decision, tab) if self.cache is not None else None
                if hit is not None:
                    decision, completion = hit.decision, hit.completion
                else:
                    completion = await call_member(self.members[decision.member], request, "answer")
            answer = self._answer_of(request, decision, completion, started, tab)
            answer.cache = hit.record if hit is not None else None
            if self.verification is not None and request.endpoint == "chat":
                with stage("verify"), _cancelled_on_leave(left, decision.member):
                    answer = await self.verification.review(answer, self.members)
                answer.latency_ms = _ms_since(started)
            if left is not None and left.left:  # nobody to answer: booked with what it cost
                raise ClientGone(decision.member, "client hung up before its answer was sent")
            if answer.escalation is not None:  # held for a person, if it asks for review
                answer = await self.reviews.hold(answer)
        except QuotaQueued as queued:  # the queue policy: a person approves the spend
            return await queue_request(self, request, queued, started)
        except PinfactoryError as exc:
            if left is not None and left.left and decision is not None:  # the client left
                exc = _left_meanwhile(decision.member, exc)
            await self.record_failure(request, exc, started, tab=tab, decision=decision)
            raise exc from None
        except Exception as exc:  # a plug-in's bug anywhere in the stages: still one row
            error = unexpected(exc, request.request_id)
            await self.record_failure(request, error, started, tab=tab, decision=decision)
            raise error from exc
        await self.record(answer, deferred)
        if self.cache is not None:
            await self.cache.save(answer)
        return answer

    async def _cached(self, request: Request, decision: Decision, tab: Tab) -> Hit | None:
        """The response cache's answer, booked as a zero-cost ``cache`` call on the member
        (callers skip it when the team has no cache)."""
        if self.cache is None:
            return None
        hit = await self.cache.find(request, decision)
        if hit is not None:
            member = hit.decision.member
            model = hit.completion.model
            tab.book(MemberCall(member, "cache", Usage(0, 0), Decimal(0), 0.0, model))
        return hit

    async def stream(
        self,
        request: Request,
        started: float | None = None,
        left: Leaving | None = None,
        deferred: Deferred | None = None,
    ) -> AsyncGenerator[Decision | str | Delta | Deltas | Answer, None]:
        """Yield the :class:`Decision`, text deltas (or chunks the member relays,
        :class:`Delta`, a run of them that came in one read as one :class:`Deltas`),
        then the recorded :class:`Answer`.

        On a team that verifies, an answer must be whole before it can be checked,
        escalated or held for review: when verification may act on it
        (:meth:`VerifyStage.holds_stream`) the stream carries the verified answer
        whole (its text as one delta, or its choices with their tool calls as one
        relayed chunk, ``members.base.replay``). A request a quota holds for
        approval streams its pending notice. A failure mid-stream is recorded
        (with the tokens streamed so far) and raised; a stream the client
        abandons is recorded as 499 with the tokens it was sent (``left`` as in
        :meth:`complete`, for the answer a verifying team makes whole). ``deferred`` as
        in :meth:`complete`: the observers of a recorded answer are told there, for
        after the stream's last frame (the row is recorded before the answer is yielded).
        """
        verification = self.verification
        if verification is not None and verification.holds_stream(request, self._may_cite):
            answer = await self.complete(request, started, left, deferred)  # records all
            yield answer.decision
            for replayed in replay(answer.completion):  # tool calls stay tool-call deltas
                yield replayed
            yield answer
            return
        started = time.perf_counter() if started is None else started
        timeline = Timeline.begin(started)
        tab = open_tab(self._prepare)
        decision: Decision | None = None
        member_stream: MemberStream | None = None
        await self._check(request, started)
        try:
            with stage("route"):
                decision = await self.route(request)
            yield decision
            call = timeline.open("call")
            member_stream = MemberStream(self.members[decision.member], request, "answer", tab)
            completion: Completion | None = None
            async for event in member_stream:
                if not isinstance(event, Completion):  # text, or a chunk the member relays
                    yield event
                else:
                    completion = event
            timeline.close(call)
            assert completion is not None  # a stream without one raised in MemberStream
            answer = self._answer_of(request, decision, completion, started, tab)
        except QuotaQueued as queued:  # held for a person: the stream carries the notice
            held = await queue_request(self, request, queued, started)
            yield held.decision
            yield held.completion.text
            yield held
            return
        except PinfactoryError as exc:
            await self.record_failure(request, exc, started, tab=tab, decision=decision)
            raise
        except (GeneratorExit, asyncio.CancelledError):
            member = decision.member if decision is not None else request.model
            gone = ClientGone(member, "client closed the stream before it ended")
            tab.abandon()  # books the tokens sent so far, now (inner parts' streams too)
            if member_stream is not None:
                self._background(member_stream.aclose())
            self._background(
                self.record_failure(request, gone, started, tab=tab, decision=decision)
            )
            raise
        except Exception as exc:  # a bug outside the member (which MemberStream maps): one row
            error = unexpected(exc, request.request_id)
            await self.record_failure(request, error, started, tab=tab, decision=decision)
            raise error from exc
        await self.record(answer, deferred)
        yield answer

    async def _check(self, request: Request, started: float) -> None:
        """Refuse (400, recorded) input the ledger cannot store, before any member runs.

        The failure row keeps the offending fields made storable.
        """
        try:
            check_storable(request)
        except RequestError as exc:
            await self.record_failure(
                None,
                exc,
                started,
                request_id=request.request_id,
                unit=storable(request.unit),
                user=storable(request.user),
                model=storable(request.model),
                correlation_id=request.correlation_id or "",
            )
            raise

    def _answer_of(
        self,
        request: Request,
        decision: Decision,
        completion: Completion,
        started: float,
        tab: Tab,
    ) -> Answer:
        if tab.trail:  # how a member made of members got to its answer
            decision = replace(decision, trail=(*decision.trail, *tab.trail))
        return Answer(
            request,
            decision,
            completion,
            _ms_since(started),
            calls=tuple(tab.calls),
            events=tuple(tab.events),
            correlation_id=request.correlation_id,
        )

    async def execute_approved(
        self, review_id: str, reviewer: str, note: str | None = None
    ) -> Review:
        """Approve a review; a held request runs first on its member, past its limit."""
        return await run_approved(self, review_id, reviewer, note)

    async def run_held(self, member: Member, request: Request, started: float) -> Completion:
        """Call one member for an approved held request; a failure is recorded."""
        tab = open_tab(self._prepare)
        try:
            return await call_member(member, request, "held", tab)
        except PinfactoryError as exc:
            await self.record_failure(request, exc, started, tab=tab)
            raise

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def record(self, answer: Answer, deferred: Deferred | None = None) -> None:
        """Settle the answer's spend and write its row and chain segment in one commit,
        then tell the observers (with ``deferred``: once the response has left).

        A ledger that refuses the row gets one more try as a failure (500,
        ``ledger_failed``) carrying the same calls and cost; if that fails too,
        :class:`LedgerError` is raised and the answer is not acknowledged.
        """
        if self.spend.active:
            await self._settle(answer)
        recording = stage_start("record")
        answer.trace_id = self.observers.trace_id(answer.request)  # sealed, then traced
        try:
            await self.ledger.record(entry_of(answer), events_of(answer))
        except LedgerError as exc:
            stage_end(recording)
            failure = _failure_of(answer.request, exc, answer.latency_ms, answer.calls)
            failure.decision, failure.trace_id = answer.decision, answer.trace_id
            await self._write_failure(failure)
            raise
        stage_end(recording)
        if deferred is None:
            self.observers.answered(answer)
        elif self.observers:
            deferred.add(self.observers.answered, answer, Timeline.current())

    async def record_failure(
        self,
        request: Request | None,
        error: PinfactoryError,
        started: float,
        *,
        tab: Tab | None = None,
        decision: Decision | None = None,
        **who: str,
    ) -> None:
        """Record a request that failed anywhere, even one that never parsed.

        ``tab`` holds the calls made before it failed: their cost is booked.
        ``who`` names unit, user, model and request id when there is no request.
        """
        calls = tuple(tab.calls) if tab is not None else ()
        failure = _failure_of(request, error, _ms_since(started), calls, **who)
        failure.decision = decision
        if self.spend.active:
            await self._settle(failure)
        await self._write_failure(failure)

    async def _write_failure(self, failure: Failure) -> None:
        recording = stage_start("record")
        if failure.trace_id is None:
            failure.trace_id = self.observers.trace_id(failure.request)
        try:
            await self.ledger.record(entry_of(failure), events_of(failure))
        except LedgerError:
            if failure.error.code == LedgerError.code:
                raise
            # the row itself could not be stored: record that instead, with the same spend
            stored = LedgerError(f"the ledger refused the request's row: {failure.error.code}")
            again = Failure(
                None, stored, failure.unit, "", "-", failure.request_id,
                failure.latency_ms, failure.calls, trace_id=failure.trace_id,
            )  # fmt: skip
            await self.ledger.record(entry_of(again), events_of(again))
        finally:
            stage_end(recording)
        self.observers.failed(failure)

    async def _settle(self, outcome: Outcome) -> None:
        """Book the outcome's actual spend: budgets settle, quotas count the extra calls
        (callers skip it when no limit is configured)."""
        if outcome.request is not None:
            await self.spend.settle(outcome.request, outcome.calls)


class Leaving(Protocol):
    """A client that may hang up (``gateway.departure.Departure``): ``left`` once it did;
    ``cancel_on_leave(task)`` names the task to cancel then (``None``: none)."""

    left: bool

    def cancel_on_leave(self, task: asyncio.Task[Any] | None) -> None: ...


class _CancelledOnLeave:
    """Cancel the work inside when the client leaves, and raise :class:`ClientGone` for
    ``member`` instead; a cancellation from anything else goes on as one. A class, not a
    generator-based context manager: it runs on every request's path."""

    __slots__ = ("left", "member", "task")

    def __init__(self, left: Leaving, member: str) -> None:
        self.left, self.member = left, member
        self.task: asyncio.Task[Any] | None = None

    def __enter__(self) -> None:
        if self.left.left:  # gone already: nothing to start
            raise ClientGone(self.member, "client hung up before its answer was made")
        self.task = asyncio.current_task()
        self.left.cancel_on_leave(self.task)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.left.cancel_on_leave(None)
        task = self.task
        if task is None or kind is not asyncio.CancelledError or not self.left.left:
            return
        if task.uncancel() == 0:  # cancelled for the leaving, by nothing else
            raise ClientGone(
                self.member,
                "client hung up before its answer was made; its calls were cancelled",
            ) from None


def _cancelled_on_leave(left: Leaving | None, member: str) -> AbstractContextManager[None]:
    """:class:`_CancelledOnLeave`, or nothing to do when no client can leave (``None``)."""
    return _NOTHING if left is None else _CancelledOnLeave(left, member)


_NOTHING = nullcontext()


def _left_meanwhile(member: str, error: PinfactoryError) -> PinfactoryError:
    """What a request that failed after its client left is recorded as: 499."""
    if isinstance(error, ClientGone):
        return error
    return ClientGone(member, f"client hung up before its answer was made; then {error.message}")


def _failure_of(
    request: Request | None,
    error: PinfactoryError,
    latency_ms: float,
    calls: tuple[Any, ...],
    **who: str,
) -> Failure:
    if request is not None:
        return Failure(
            request, error, request.unit, request.user, request.model, request.request_id,
            latency_ms, calls, correlation_id=request.correlation_id,
        )  # fmt: skip
    return Failure(
        None,
        error,
        who.get("unit", "-"),
        who.get("user", ""),
        who.get("model", "-"),
        who.get("request_id", ""),
        latency_ms,
        calls,
        correlation_id=who.get("correlation_id") or None,
    )


def with_composites(members: Mapping[str, Member], router: Router) -> dict[str, Member]:
    """``members`` and the members the router made of them (a cascade's tiers), bound."""
    found = dict(members)
    if isinstance(router, ComposingRouter):
        for made in router.composites():
            if made.name not in found:
                found[made.name] = made
                if isinstance(made, Composite):
                    made.bind(found)
    return found


def build_members(team: Team) -> dict[str, Member]:
    members: dict[str, Member] = {}
    for spec in team.members:
        cls = member_class(spec.kind)
        members[spec.name] = cls(
            spec.name,
            cls.Settings.model_validate(spec.settings),
            price=spec.price,
            tier=spec.tier,
            tags=tuple(spec.tags),
            timeout_s=spec.timeout_s,
            max_output_tokens=spec.max_output_tokens,
            capabilities=spec.member_capabilities(cls.capabilities),
        )
    for member in members.values():  # members made of members find their parts
        if isinstance(member, Composite):
            member.bind(members)
    return members


@asynccontextmanager
async def open_pipeline(
    team: Team, *, ledger: Ledger | None = None, observers: Observers | None = None
) -> AsyncIterator[Pipeline]:
    """Open every member, the ledger and the observers; close them all on the way out."""
    members = build_members(team)
    spec = team.spec.ledger
    ledger = ledger or open_ledger(team.ledger_location, spec.durability, spec.journal_dir)
    observers = build_observers(team) if observers is None else observers
    async with AsyncExitStack() as stack:
        observers.open()
        stack.callback(observers.close)
        await ledger.open()
        stack.push_async_callback(ledger.close)
        for member in members.values():
            await member.open()
            stack.push_async_callback(member.close)
        router = build_router(team)
        if isinstance(router, Learner):  # learns from the ledger's outcomes while it serves
            await stack.enter_async_context(router.learning(ledger))
        pipeline = Pipeline(team, members, router, ledger, observers)
        yield pipeline
        if pipeline._tasks:  # abandoned streams still being recorded
            await asyncio.gather(*pipeline._tasks, return_exceptions=True)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
