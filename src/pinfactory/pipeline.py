"""Composes the stages for one request.

    route      the router's decision, then the unit's quotas and budgets
    call       the member (a cascade may try several tiers); input guards first
    verify     verdict and confidence; escalate, caveat or mark for review
    hold       answers escalated to a person wait in the review queue
    record     ledger row and audit chain in one commit, then traces and metrics

:func:`open_pipeline` opens a team's members and ledger (the only I/O) and
yields a :class:`Pipeline`; the gateway and the CLI both answer through it,
so ``pinfactory ask`` routes exactly as the server does. Every request that
fails at any stage is recorded too, with why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pinfactory.capabilities import Eligibility
from pinfactory.errors import ClientGone, MemberError, MemberTimeout, PinfactoryError, UnknownModel
from pinfactory.ledger import Ledger, LedgerEntry, open_ledger
from pinfactory.ledger.base import Review, to_nano
from pinfactory.ledger.events import answer_events, failure_events
from pinfactory.ledger.queued import queue_request, run_approved
from pinfactory.ledger.quotas import Budgets
from pinfactory.ledger.reviews import ReviewQueue
from pinfactory.members import Completion, Member, member_class
from pinfactory.members.base import Delta
from pinfactory.observe import Observers, Timeline, build_observers, stage
from pinfactory.observe.timeline import stage_end, stage_start
from pinfactory.request import Request
from pinfactory.routing import Decision, Router, TieredRouter, build_router
from pinfactory.routing.quotas import QuotaGate, QuotaQueued, build_quota_gate
from pinfactory.team import Team
from pinfactory.verify.stage import VerifyStage


@dataclass(slots=True)
class Answer:
    """What the pipeline produced for one request."""

    request: Request
    decision: Decision
    completion: Completion
    latency_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_usd(self) -> Decimal:
        return self.completion.cost_usd

    def metadata(self) -> dict[str, Any]:
        """The ``pinfactory`` block of the response."""
        return {
            "member": self.decision.member,
            "reason": self.decision.reason,
            "router": self.decision.router,
            "rule": self.decision.rule,
            "fallback": self.decision.fallback,
            "confidence": self.decision.confidence,
            "cost_usd": float(self.cost_usd),
            "latency_ms": round(self.latency_ms, 3),
            "request_id": self.request.request_id,
            "unit": self.request.unit,
            "refused": self.completion.refused,
            **self.extra,
        }


class Pipeline:
    """Route, call and record one request. Holds no I/O of its own."""

    def __init__(
        self,
        team: Team,
        members: Mapping[str, Member],
        router: Router,
        ledger: Ledger,
        observers: Observers | None = None,
        quotas: QuotaGate | None = None,
    ) -> None:
        self.team = team
        self.members = dict(members)
        self.router = router
        self.ledger = ledger
        self.quotas = quotas or build_quota_gate(team, counter=ledger)
        self.budgets = Budgets(team, ledger)
        self.reviews = ReviewQueue(ledger, team.spec.reviews)
        self.observers = observers or Observers()
        self._tasks: set[asyncio.Task[None]] = set()
        # a Protocol isinstance check is slow: once here, not per request
        self._tiered = router if isinstance(router, TieredRouter) else None
        spec = team.spec.verification
        self.verification = VerifyStage(spec) if spec is not None else None
        self.eligibility = Eligibility(self.members, team.spec.drop_unsupported)

    def decide(self, request: Request) -> Decision:
        """Which member answers: the router for ``auto``, else the pinned member."""
        if request.model in ("auto", "", self.team.name):
            return self.eligibility.choose(request, self.router.decide(request))
        member = self.members.get(request.model)
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

    async def route(self, request: Request) -> Decision:
        """The decision to carry out, after the unit's quotas and budgets had their say."""
        decision = self.decide(request)
        if self.quotas.policies:  # none configured: skip the step entirely
            decision = await self.quotas.admit(request, decision)
        if self.budgets.active:
            decision = await self.budgets.admit(request, decision)
        return decision

    async def _answer(self, request: Request, decision: Decision) -> tuple[Decision, Completion]:
        """Call the decided member; a tiered router (cascade) runs its tiers instead."""

        async def call(name: str) -> Completion:
            return await self._call(self.members[name], request)

        if decision.router != "pinned" and self._tiered is not None:
            return await self._tiered.answer(request, decision, call)
        return decision, await call(decision.member)

    async def complete(self, request: Request, started: float | None = None) -> Answer:
        started = time.perf_counter() if started is None else started
        Timeline.begin(started)
        try:
            with stage("route"):
                decision = await self.route(request)
            with stage("call"):
                decision, completion = await self._answer(request, decision)
            answer = Answer(request, decision, completion, _ms_since(started))
            if self.verification is not None:
                with stage("verify"):
                    answer = await self.verification.review(answer, self.members, self._call)
                answer.latency_ms = _ms_since(started)
        except QuotaQueued as queued:  # the queue policy: a person approves the spend
            return await queue_request(self, request, queued, started)
        except PinfactoryError as exc:
            await self.record_failure(request, exc, started)
            raise
        answer = await self.reviews.hold(answer)
        await self.record(answer)
        return answer

    async def stream(
        self, request: Request, started: float | None = None
    ) -> AsyncIterator[Decision | str | Delta | Answer]:
        """Yield the :class:`Decision`, text deltas (or relayed chunks), then the recorded
        :class:`Answer`.

        On a team that verifies, an answer must be whole before it can be checked,
        escalated or held for review: the stream then carries the verified answer
        as one delta. A request a quota holds for approval streams its pending
        notice. A stream the client abandons is still recorded (status 499).
        """
        if self.verification is not None:
            answer = await self.complete(request, started)  # records, failures included
            yield answer.decision
            yield answer.completion.text
            yield answer
            return
        started = time.perf_counter() if started is None else started
        timeline = Timeline.begin(started)
        member_name = request.model
        try:
            with stage("route"):
                decision = await self.route(request)  # streams are not cascaded
            member_name = decision.member
            yield decision
            call = timeline.open("call")
            member = self.members[decision.member]
            async for event in member.stream(self.eligibility.fit(member, request)):
                if not isinstance(event, Completion):  # text, or a chunk the member relays
                    yield event
                else:
                    timeline.close(call)
                    answer = Answer(request, decision, event, _ms_since(started))
                    await self.record(answer)
                    yield answer
        except QuotaQueued as queued:  # held for a person: the stream carries the notice
            held = await queue_request(self, request, queued, started)
            yield held.decision
            yield held.completion.text
            yield held
        except TimeoutError as exc:
            failure = MemberTimeout(member_name, "timed out while streaming")
            await self.record_failure(request, failure, started)
            raise failure from exc
        except PinfactoryError as exc:
            await self.record_failure(request, exc, started)
            raise
        except (GeneratorExit, asyncio.CancelledError):
            gone = ClientGone(member_name, "client closed the stream before it ended")
            self._background(self.record_failure(request, gone, started))
            raise

    async def execute_approved(
        self, review_id: str, reviewer: str, note: str | None = None
    ) -> Review:
        """Approve a review; a held request runs first on its member, past its limit."""
        return await run_approved(self, review_id, reviewer, note)

    async def run_held(self, member: Member, request: Request, started: float) -> Completion:
        """Call one member for an approved held request; a failure is recorded."""
        try:
            return await self._call(member, request)
        except PinfactoryError as exc:
            await self.record_failure(request, exc, started)
            raise

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, member: Member, request: Request) -> Completion:
        if self.verification is not None:  # guards: size, injection, PII before remote members
            request = self.verification.guard_input(member, request)
        request = self.eligibility.fit(member, request)
        try:
            async with asyncio.timeout(member.timeout_s):  # every member, tools included
                return await member.complete(request)
        except TimeoutError as exc:
            raise MemberTimeout(member.name, f"no answer within {member.timeout_s:g}s") from exc

    async def record(self, answer: Answer) -> None:
        usage = answer.completion.usage
        if self.budgets.active:
            await self.budgets.settle(answer.request.request_id, to_nano(answer.cost_usd))
        recording = stage_start("record")
        await self.ledger.record(
            LedgerEntry(
                request_id=answer.request.request_id,
                unit=answer.request.unit,
                user=answer.request.user,
                model=answer.request.model,
                member=answer.decision.member,
                router=answer.decision.router,
                reason=answer.decision.reason,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=answer.cost_usd,
                latency_ms=answer.latency_ms,
                status=200,
                stream=answer.request.stream,
                tags=answer.request.tags,
            ),
            answer_events(answer),
        )
        stage_end(recording)
        self.observers.answered(answer)

    async def record_failure(
        self, request: Request | None, error: PinfactoryError, started: float, **who: str
    ) -> None:
        """Record a request that failed anywhere, even one that never parsed."""
        member = error.member if isinstance(error, MemberError) else None
        request_id = request.request_id if request else who.get("request_id", "")
        if request is not None:
            await self.budgets.release(request.request_id)
        recording = stage_start("record")
        await self.ledger.record(
            LedgerEntry(
                request_id=request_id,
                unit=request.unit if request else who.get("unit", "-"),
                user=request.user if request else who.get("user", ""),
                model=request.model if request else who.get("model", "-"),
                member=member,
                router=None,
                reason=None,
                input_tokens=0,
                output_tokens=0,
                cost_usd=Decimal(0),
                latency_ms=_ms_since(started),
                status=error.status,
                error=f"{error.code}: {error.message}",
                stream=request.stream if request else False,
                tags=request.tags if request else (),
            ),
            failure_events(request, error, request_id),
        )
        stage_end(recording)
        self.observers.failed(request, error, started, **who)


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
            capabilities=spec.member_capabilities(cls.capabilities),
        )
    return members


@asynccontextmanager
async def open_pipeline(
    team: Team, *, ledger: Ledger | None = None, observers: Observers | None = None
) -> AsyncIterator[Pipeline]:
    """Open every member, the ledger and the observers; close them all on the way out."""
    members = build_members(team)
    ledger = ledger or open_ledger(team.ledger_location, team.spec.ledger.durability)
    observers = build_observers(team) if observers is None else observers
    async with AsyncExitStack() as stack:
        observers.open()
        stack.callback(observers.close)
        await ledger.open()
        stack.push_async_callback(ledger.close)
        for member in members.values():
            await member.open()
            stack.push_async_callback(member.close)
        yield Pipeline(team, members, build_router(team), ledger, observers)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
