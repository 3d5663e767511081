"""One spend model: limits on calls and USD per window, reserved at the worst case.

A :class:`SpendLimit` is the one typed spec: at most ``max_calls`` calls and/or
``max_spend_usd`` per hour, day or month (UTC windows), for one unit or each
unit apart (``unit: "*"``), optionally one user, and either every call of the
unit (a budget) or only the calls of one member or tier (a quota). When a
request's worst case does not fit, ``on_exhausted`` says what happens:
``refuse`` (429 naming the limit), ``downgrade`` (a cheaper member that fits,
``downgrade_to`` first), or ``queue`` (held for a person: ``ledger/queued.py``).

```yaml
limits:
  - {name: sales-daily, unit: sales, period: day, max_spend_usd: 5.00, on_exhausted: refuse}
  - {name: frontier, tier: frontier, unit: "*", max_calls: 1000, on_exhausted: downgrade,
     downgrade_to: local}
```

The team file's older forms, ``budgets:`` and ``routing.quotas:``, load as
limits too (``Team.limits``).

:meth:`Spend.admit` runs after routing, before any member is called: it
reserves, in every limit covering the decision, one call and the request's
*worst case* (``WorstCase``: the member at its output cap, plus every call
verification may add) with one atomic conditional add per limit
(:meth:`QuotaCounter.try_consume`), all or none, so concurrent requests can
never pass a limit together. :meth:`Spend.settle` runs when the request ends
and books what it actually did: the calls each limit covers and their cost;
a request that made no call gives its reservation back.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from pinfactory.errors import QuotaExceeded
from pinfactory.ledger.base import Cap, QuotaCounter, from_nano, to_nano
from pinfactory.members.calls import MemberCall
from pinfactory.request import Request
from pinfactory.routing.base import Decision, MemberTable, member_table, resolve_member
from pinfactory.team import Period, SpendLimit, Team

WorstCase = Callable[[str, Request], Decimal]
"""The most a request answered by the named member can cost, every call included (USD)."""
Reach = Callable[[str], Sequence[str]]
"""The members a call to the named member may end up calling (a composite's parts)."""


def itself(member: str) -> Sequence[str]:
    return (member,)


class QuotaQueued(QuotaExceeded):
    """A limit is exhausted and its policy says: hold the request for review.

    The pipeline files the request with the review queue (``ledger/queued.py``).
    ``key`` and ``period`` name the counter an approved run is booked on, ``nusd``
    the worst case it was refused at; ``source`` is ``budget`` for a unit budget.
    """

    code = "quota_queued"

    def __init__(
        self,
        message: str,
        *,
        decision: Decision,
        escalation: str,
        key: str = "",
        period: Period = "day",
        nusd: int = 0,
        source: Literal["quota", "budget"] = "quota",
    ) -> None:
        super().__init__(message)
        self.decision = decision
        self.escalation = escalation
        self.key = key
        self.period: Period = period
        self.nusd = nusd
        self.source = source


def window_start(period: Period, now: float | None = None) -> float:
    """Start of the UTC hour, day or month holding ``now`` (default: this moment)."""
    now = time.time() if now is None else now
    if period == "hour":
        return float(int(now) // 3600 * 3600)
    if period == "day":
        return float(int(now) // 86400 * 86400)
    moment = time.gmtime(now)
    return float(calendar.timegm((moment.tm_year, moment.tm_mon, 1, 0, 0, 0)))


class MemoryQuotaCounter:
    """Limit usage in process memory: for tests and a single process."""

    def __init__(self) -> None:
        self._usage: dict[tuple[str, float], tuple[int, int]] = {}
        self._lock = asyncio.Lock()

    async def try_consume(self, key: str, start: float, cap: Cap, calls: int, nusd: int) -> bool:
        async with self._lock:
            used_calls, used_nusd = self._usage.get((key, start), (0, 0))
            if not cap.allows(used_calls + calls, used_nusd + nusd):
                return False
            self._usage[(key, start)] = (used_calls + calls, used_nusd + nusd)
            return True

    async def adjust(self, key: str, window_start: float, calls: int, nusd: int) -> None:
        async with self._lock:
            used_calls, used_nusd = self._usage.get((key, window_start), (0, 0))
            self._usage[(key, window_start)] = (used_calls + calls, used_nusd + nusd)

    def usage(self, key: str, window_start: float) -> tuple[int, int]:
        return self._usage.get((key, window_start), (0, 0))


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one limit holds for one request until it settles."""

    limit: SpendLimit
    key: str
    window: float
    calls: int
    nusd: int


class Spend:
    """The team's limits on one counter: admit before the call, settle after it."""

    def __init__(
        self,
        limits: Sequence[SpendLimit],
        counter: QuotaCounter,
        *,
        members: MemberTable,
        fallback: str,
        worst_case: WorstCase,
        reach: Reach = itself,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = list(limits)
        self.reach = reach
        self.counter = counter
        self.members = members
        self.fallback = fallback
        self.worst_case = worst_case
        self.clock = clock
        self._held: dict[str, list[Reservation]] = {}

    @property
    def active(self) -> bool:
        return bool(self.limits)

    async def admit(self, request: Request, decision: Decision) -> Decision:
        """Reserve the decision's worst case in every covering limit, or apply a policy.

        Returns the decision to carry out (as routed, or downgraded). Raises
        :class:`QuotaExceeded` (refuse) or :class:`QuotaQueued` (queue).
        """
        applicable = [limit for limit in self.limits if limit.covers_request(request)]
        if not applicable:
            return decision
        tried: set[str] = set()
        while True:
            nusd = to_nano(self.worst_case(decision.member, request))
            refused = await self._reserve(request, decision, applicable, nusd)
            if refused is None:
                return decision
            note = self._note(refused, request, nusd)
            if refused.on_exhausted == "queue":
                queued = replace(decision, reason=f"{decision.reason}; {note}: queued for review")
                raise QuotaQueued(
                    f"{note}; request queued for human review",
                    decision=queued,
                    escalation=(
                        f"budget '{refused.name}' exhausted for unit '{request.unit}'"
                        if refused.source == "budget"
                        else note
                    ),
                    key=refused.key(request.unit),
                    period=refused.period,
                    nusd=nusd,
                    source="budget" if refused.source == "budget" else "quota",
                )
            tried.add(decision.member)
            cheaper = None
            if refused.on_exhausted == "downgrade":
                cheaper = self._downgrade(refused, request, nusd, tried)
            if cheaper is None:
                if refused.on_exhausted == "downgrade" and refused.source == "quota":
                    raise QuotaExceeded(f"{note}; no member to downgrade to")
                param = "budget" if refused.source == "budget" else None
                refusal = note if refused.source == "budget" else f"{note}; request refused"
                raise QuotaExceeded(refusal, param=param)
            decision = self._downgraded(decision, cheaper, refused, note, request)

    def _downgraded(
        self, decision: Decision, member: str, limit: SpendLimit, note: str, request: Request
    ) -> Decision:
        if limit.source == "budget":
            reason = (
                f"budget '{limit.name}' exhausted: downgraded from {decision.member} to "
                f"{member} ({decision.reason})"
            )
        else:
            reason = f"{decision.reason}; {note}: downgraded to '{member}'"
        tier = self.members[member][0] if member in self.members else None
        return replace(
            decision,
            member=member,
            tier=tier,
            estimated_cost_usd=self.worst_case(member, request),
            reason=reason,
        )

    async def settle(self, request: Request, calls: Sequence[MemberCall]) -> None:
        """Book what the request did in every limit covering it: the calls of the members
        each covers (a call that failed and cost nothing does not count) and their cost.

        A reservation is corrected to the actual figures (given back when no call
        was made); calls no reservation covered (a cascade's later tier, a
        cross-check) are added: counted, never refused, since they were made.
        """
        held = {id(h.limit): h for h in self._held.pop(request.request_id, ())}
        now = self.clock()
        for limit in self.limits:
            if not limit.covers_request(request):
                continue
            covered = [
                c
                for c in calls
                if limit.covers_member(c.member, self._tier(c)) and (c.error is None or c.cost_usd)
            ]
            used = (len(covered), sum(to_nano(c.cost_usd) for c in covered))
            reservation = held.get(id(limit))
            if reservation is not None:
                key, window = reservation.key, reservation.window
                delta = (used[0] - reservation.calls, used[1] - reservation.nusd)
            else:
                key, window = limit.key(request.unit), window_start(limit.period, now)
                delta = used
            if delta != (0, 0):
                await self.counter.adjust(key, window, *delta)

    async def charge(self, request: Request, member: str, nusd: int) -> None:
        """Book a call a reviewer approved past the limits: counted, never refused."""
        tier = self.members.get(member, (None, Decimal(0)))[0]
        now = self.clock()
        for limit in self.limits:
            if limit.covers_request(request) and limit.covers_member(member, tier):
                window = window_start(limit.period, now)
                await self.counter.adjust(limit.key(request.unit), window, 1, nusd)

    def _tier(self, call: MemberCall) -> str | None:
        return self.members[call.member][0] if call.member in self.members else None

    async def _reserve(
        self,
        request: Request,
        decision: Decision,
        limits: Sequence[SpendLimit],
        nusd: int,
    ) -> SpendLimit | None:
        """Reserve in every covering limit or none; the limit that refused, if any."""
        now = self.clock()
        taken: list[Reservation] = []
        reached = [
            (m, decision.tier if m == decision.member else self.members.get(m, ("", 0))[0])
            for m in self.reach(decision.member)
        ]  # a composite: every member it may call, so a quota on any of them reserves
        for limit in limits:
            if not any(limit.covers_member(m, tier) for m, tier in reached):
                continue
            key, window = limit.key(request.unit), window_start(limit.period, now)
            spend = limit.max_spend_usd
            cap = Cap(limit.max_calls, to_nano(spend) if spend is not None else None)
            if not await self.counter.try_consume(key, window, cap, 1, nusd):
                for held in taken:
                    await self.counter.adjust(held.key, held.window, -held.calls, -held.nusd)
                return limit
            taken.append(Reservation(limit, key, window, 1, nusd))
        self._held[request.request_id] = taken
        return None

    def _downgrade(
        self,
        limit: SpendLimit,
        request: Request,
        nusd: int,
        tried: set[str],
    ) -> str | None:
        """The member to try next: ``downgrade_to`` (or, for a quota, the fallback), else
        the cheapest untried member whose worst case is below the refused one."""
        target = limit.downgrade_to or (self.fallback if limit.source != "budget" else None)
        if target is not None:
            named = resolve_member(self.members, target)
            if named is not None and named not in tried:
                return named
            if limit.source != "budget":
                return None
        options = [
            (to_nano(self.worst_case(name, request)), name)
            for name in self.members
            if name not in tried
        ]
        cheaper = sorted((cost, name) for cost, name in options if cost < nusd)
        return cheaper[0][1] if cheaper else None

    def _note(self, limit: SpendLimit, request: Request, nusd: int) -> str:
        if limit.source == "budget":
            return (
                f"budget '{limit.name}' exhausted: unit '{request.unit}' may spend "
                f"${limit.max_spend_usd} per {limit.period}; this request may cost up to "
                f"${from_nano(nusd)}"
            )
        return f"{limit.describe()} exhausted for unit '{request.unit}'"


def build_spend(
    team: Team,
    counter: QuotaCounter | None = None,
    worst_case: WorstCase | None = None,
    *,
    reach: Reach = itself,
    only: Literal["quota"] | None = None,
) -> Spend:
    """The team's limits (``limits``, ``budgets`` and ``routing.quotas``) on ``counter``
    (in memory by default). ``worst_case`` defaults to the member table's estimate of a
    typical call; the pipeline passes its own. ``only="quota"`` keeps the quotas alone
    (what ``pinfactory route`` applies without a ledger)."""
    table = member_table(team)
    limits = [limit for limit in team.limits() if only is None or limit.source == only]

    def typical(member: str, _: Request) -> Decimal:
        return table[member][1] if member in table else Decimal(0)

    return Spend(
        limits,
        counter or MemoryQuotaCounter(),
        members=table,
        fallback=team.spec.routing.fallback,
        worst_case=worst_case or typical,
        reach=reach,
    )
