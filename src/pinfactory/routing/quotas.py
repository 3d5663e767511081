"""Quotas: a route to an expensive tier asks the unit's remaining quota first.

Declared in the team file under ``routing.quotas``:

```yaml
routing:
  quotas:
    - name: frontier-daily
      tier: frontier            # or member: NAME
      unit: "*"                 # every unit counted apart; or one unit's name
      period: day               # hour | day | month (UTC windows)
      max_calls: 1000
      max_spend_usd: 5.00
      on_exhausted: downgrade   # downgrade | queue | refuse
      downgrade_to: local       # member or tier:NAME (default: the fallback)
```

Each admitted request consumes one call and its *estimated* cost (the
decision's ``estimated_cost_usd``) through a :class:`QuotaCounter`, the one
atomic operation a store must offer. When a quota is exhausted:

- ``downgrade``: the request goes to ``downgrade_to`` instead, and the
  decision's reason says which quota sent it there;
- ``refuse``: :class:`QuotaExceeded` (HTTP 429) naming the quota;
- ``queue``: :class:`QuotaQueued`; the pipeline files the request with the
  human review queue instead of answering it (``ledger/queued.py``): the
  client gets the pending review (poll mode) or waits for it (wait mode).
  A reviewer's approval runs the request on the member it was routed to,
  past this quota, and books the call on it anyway (``adjust``); an
  override releases the reviewer's own answer and calls no member. A
  streamed request gets the pending notice as its stream.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pinfactory.errors import QuotaExceeded, TeamFileError
from pinfactory.ledger.base import QuotaCounter, to_nano
from pinfactory.members.calls import MemberCall
from pinfactory.request import Request
from pinfactory.routing.base import (
    Decision,
    MemberTable,
    member_table,
    resolve_member,
)

if TYPE_CHECKING:
    from pinfactory.team import Team

Period = Literal["hour", "day", "month"]


class MemoryQuotaCounter:
    """Quota usage in process memory: for tests and a single process."""

    def __init__(self) -> None:
        self._usage: dict[tuple[str, float], tuple[int, int]] = {}
        self._lock = asyncio.Lock()

    async def try_consume(
        self,
        key: str,
        window_start: float,
        limit_calls: int | None,
        limit_nusd: int | None,
        calls: int,
        nusd: int,
    ) -> bool:
        async with self._lock:
            used_calls, used_nusd = self._usage.get((key, window_start), (0, 0))
            if limit_calls is not None and used_calls + calls > limit_calls:
                return False
            if limit_nusd is not None and used_nusd + nusd > limit_nusd:
                return False
            self._usage[(key, window_start)] = (used_calls + calls, used_nusd + nusd)
            return True

    async def adjust(self, key: str, window_start: float, calls: int, nusd: int) -> None:
        async with self._lock:
            used_calls, used_nusd = self._usage.get((key, window_start), (0, 0))
            self._usage[(key, window_start)] = (used_calls + calls, used_nusd + nusd)

    def usage(self, key: str, window_start: float) -> tuple[int, int]:
        return self._usage.get((key, window_start), (0, 0))


class QuotaPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    tier: str | None = None
    member: str | None = None
    unit: str = "*"
    period: Period = "day"
    max_calls: int | None = Field(default=None, ge=0)
    max_spend_usd: Decimal | None = Field(default=None, ge=0)
    on_exhausted: Literal["downgrade", "queue", "refuse"] = "refuse"
    downgrade_to: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> QuotaPolicy:
        if (self.tier is None) == (self.member is None):
            raise ValueError("give exactly one of 'tier' or 'member'")
        if self.max_calls is None and self.max_spend_usd is None:
            raise ValueError("give max_calls, max_spend_usd or both")
        return self

    def covers(self, decision: Decision, unit: str) -> bool:
        return self.covers_member(decision.member, decision.tier, unit)

    def covers_member(self, member: str, tier: str | None, unit: str) -> bool:
        if self.unit not in ("*", unit):
            return False
        if self.member is not None:
            return member == self.member
        return tier == self.tier

    def key(self, unit: str) -> str:
        return f"quota:{self.name}:{unit}"

    def describe(self) -> str:
        limits = []
        if self.max_calls is not None:
            limits.append(f"{self.max_calls} calls")
        if self.max_spend_usd is not None:
            limits.append(f"${self.max_spend_usd}")
        target = f"member '{self.member}'" if self.member else f"tier '{self.tier}'"
        return f"quota '{self.name}' ({' / '.join(limits)} a {self.period} on {target})"


class QuotaQueued(QuotaExceeded):
    """The quota is exhausted and policy says: hold the request for review.

    The pipeline catches it and files the request with the review queue
    (``ledger/queued.py``); it reaches a client as a 429 only from a stream,
    which cannot wait. ``key`` and ``period`` name the counter the approved
    spend is booked on, ``nusd`` the estimate it books for a quota.
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


class QuotaGate:
    """The quota step: runs right after routing, before any member is called."""

    def __init__(
        self,
        policies: Sequence[QuotaPolicy],
        counter: QuotaCounter,
        *,
        members: MemberTable,
        fallback: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policies = list(policies)
        self.counter = counter
        self.members = members
        self.fallback = fallback
        self.clock = clock

    async def admit(self, request: Request, decision: Decision) -> Decision:
        """The decision to carry out: as routed, downgraded, or an exception."""
        seen: set[str] = set()
        while True:
            exhausted = await self._consume(request, decision)
            if exhausted is None:
                return decision
            note = f"{exhausted.describe()} exhausted for unit '{request.unit}'"
            if exhausted.on_exhausted == "refuse" or exhausted.name in seen:
                raise QuotaExceeded(f"{note}; request refused")
            if exhausted.on_exhausted == "queue":
                queued = replace(decision, reason=f"{decision.reason}; {note}: queued for review")
                raise QuotaQueued(
                    f"{note}; request queued for human review",
                    decision=queued,
                    escalation=note,
                    key=exhausted.key(request.unit),
                    period=exhausted.period,
                    nusd=to_nano(decision.estimated_cost_usd),
                )
            seen.add(exhausted.name)
            decision = self._downgrade(decision, exhausted, note)

    async def _consume(self, request: Request, decision: Decision) -> QuotaPolicy | None:
        """Consume every covering quota; the first that refuses, or None.

        Quotas consumed before one refuses stay consumed: each is a separate
        atomic counter, and a refused request still used the earlier checks.
        Declare the tightest quota first.
        """
        now = self.clock()
        nusd = to_nano(decision.estimated_cost_usd)
        for policy in self.policies:
            if not policy.covers(decision, request.unit):
                continue
            limit_nusd = to_nano(policy.max_spend_usd) if policy.max_spend_usd is not None else None
            added = await self.counter.try_consume(
                policy.key(request.unit),
                window_start(policy.period, now),
                policy.max_calls,
                limit_nusd,
                1,
                nusd,
            )
            if not added:
                return policy
        return None

    async def book_extra(self, unit: str, calls: Sequence[MemberCall]) -> None:
        """Count the calls made beyond the admitted one (cascade tiers, fallbacks,
        cross-checks, samples, escalations) on every quota that covers their member:
        booked, never refused, since they were already made."""
        now = self.clock()
        for call in calls:
            if call.purpose == "answer":
                continue
            tier = self.members[call.member][0] if call.member in self.members else None
            for policy in self.policies:
                if policy.covers_member(call.member, tier, unit):
                    window = window_start(policy.period, now)
                    nusd = to_nano(call.cost_usd)
                    await self.counter.adjust(policy.key(unit), window, 1, nusd)

    def _downgrade(self, decision: Decision, policy: QuotaPolicy, note: str) -> Decision:
        target = resolve_member(self.members, policy.downgrade_to or self.fallback)
        if target is None or target == decision.member:
            raise QuotaExceeded(f"{note}; no member to downgrade to")
        tier, cost = self.members[target]
        return replace(
            decision,
            member=target,
            tier=tier,
            estimated_cost_usd=cost,
            reason=f"{decision.reason}; {note}: downgraded to '{target}'",
        )


def build_quota_gate(team: Team, counter: QuotaCounter | None = None) -> QuotaGate:
    """The team's quota step; policies come from ``routing.quotas``."""
    raw = getattr(team.spec.routing, "quotas", None) or []
    if not isinstance(raw, list):
        raise TeamFileError("routing.quotas: a list of quota policies")
    policies = []
    for index, item in enumerate(raw):
        try:
            policies.append(QuotaPolicy.model_validate(item))
        except ValueError as exc:
            raise TeamFileError(f"routing.quotas.{index}: {exc}") from exc
    declared = {m.name for m in team.spec.members}
    for policy in policies:
        named = [policy.member, policy.downgrade_to]
        for name in named:
            if name and not name.startswith("tier:") and name not in declared:
                raise TeamFileError(f"quota '{policy.name}': unknown member '{name}'")
    return QuotaGate(
        policies,
        counter or MemoryQuotaCounter(),
        members=member_table(team),
        fallback=team.spec.routing.fallback,
    )
