"""Unit budgets on the ledger's atomic quota counters.

A budget reserves the *worst case* a request can cost before any member is
called (every call it may make, each at its output cap: the request's
``max_tokens``, or the member's ``max_output_tokens``, which the member sends
upstream), with one atomic conditional add (:meth:`QuotaCounter.try_consume`),
so concurrent requests can never spend past the limit together; once the
request ends, :meth:`Budgets.settle` books the actual cost of every call it
made (or gives the reservation back when it made none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from pinfactory.errors import QuotaExceeded
from pinfactory.ledger.base import QuotaCounter, from_nano, to_nano
from pinfactory.request import Request
from pinfactory.routing.base import Decision
from pinfactory.routing.quotas import QuotaQueued, window_start
from pinfactory.team import BudgetSpec, MemberSpec, Team

WorstCase = Callable[[str, Request], Decimal]
"""The most a request answered by the named member can cost, every call included (USD)."""


def budget_key(spec: BudgetSpec) -> str:
    return f"budget:{spec.unit}:{spec.period}"


@dataclass(frozen=True, slots=True)
class Reservation:
    key: str
    window: float
    nusd: int


class Budgets:
    """The team's unit budgets, enforced on a :class:`QuotaCounter`."""

    def __init__(self, team: Team, counter: QuotaCounter, worst_case: WorstCase) -> None:
        self.team = team
        self.counter = counter
        self.worst_case = worst_case
        self._by_unit: dict[str, list[BudgetSpec]] = {}
        for spec in team.spec.budgets:
            self._by_unit.setdefault(spec.unit, []).append(spec)
        self._held: dict[str, list[Reservation]] = {}

    @property
    def active(self) -> bool:
        """Whether any budget is configured, or a reservation is still held."""
        return bool(self._by_unit or self._held)

    async def admit(self, request: Request, decision: Decision) -> Decision:
        """Reserve the decision's cost in every budget of the unit, or apply the policy.

        ``refuse`` raises :class:`QuotaExceeded` naming the budget; ``downgrade``
        tries cheaper members (cheapest first) that still fit, then refuses;
        ``queue`` raises :class:`QuotaQueued`, which the pipeline files for review.
        """
        specs = self._by_unit.get(request.unit)
        if not specs:
            return decision
        estimate = self._estimate(decision.member, request)
        refused = await self._reserve(request.request_id, specs, estimate)
        if refused is None:
            return decision
        if refused.on_exhausted == "downgrade":
            for member, cost in self._cheaper(decision.member, request, estimate):
                if await self._reserve(request.request_id, specs, cost) is None:
                    return replace(
                        decision,
                        member=member.name,
                        tier=member.tier,
                        estimated_cost_usd=from_nano(cost),
                        reason=f"budget '{_name(refused)}' exhausted: downgraded from "
                        f"{decision.member} to {member.name} ({decision.reason})",
                    )
        note = (
            f"budget '{_name(refused)}' exhausted: unit '{request.unit}' may spend "
            f"${refused.max_spend_usd} per {refused.period}; this request needs about "
            f"${from_nano(estimate)}"
        )
        if refused.on_exhausted == "queue":
            raise QuotaQueued(
                f"{note}; request queued for human review",
                decision=replace(decision, reason=f"{decision.reason}; {note}: queued for review"),
                escalation=f"budget '{_name(refused)}' exhausted for unit '{request.unit}'",
                key=budget_key(refused),
                period=refused.period,
                nusd=estimate,
                source="budget",
            )
        raise QuotaExceeded(note, param="budget")

    async def charge(self, unit: str, nusd: int) -> None:
        """Book spend a reviewer approved past the limit: counted, never checked."""
        for spec in self._by_unit.get(unit, ()):
            await self.counter.adjust(budget_key(spec), window_start(spec.period), 1, nusd)

    async def settle(self, request_id: str, actual_nusd: int) -> None:
        """Book the actual cost against what was reserved (0 gives it all back)."""
        for held in self._held.pop(request_id, ()):
            if actual_nusd != held.nusd:
                await self.counter.adjust(held.key, held.window, 0, actual_nusd - held.nusd)

    async def release(self, request_id: str) -> None:
        """A request that failed: give its reservations back, and the call."""
        for held in self._held.pop(request_id, ()):
            await self.counter.adjust(held.key, held.window, -1, -held.nusd)

    async def _reserve(
        self, request_id: str, specs: Sequence[BudgetSpec], nusd: int
    ) -> BudgetSpec | None:
        """Reserve in all budgets or none; the budget that refused, if any."""
        taken: list[Reservation] = []
        for spec in specs:
            key, window = budget_key(spec), window_start(spec.period)
            limit = to_nano(spec.max_spend_usd)
            if not await self.counter.try_consume(key, window, None, limit, 1, nusd):
                for held in taken:
                    await self.counter.adjust(held.key, held.window, -1, -held.nusd)
                return spec
            taken.append(Reservation(key, window, nusd))
        self._held[request_id] = taken
        return None

    def _estimate(self, member: str, request: Request) -> int:
        return to_nano(self.worst_case(member, request))

    def _cheaper(
        self, current: str, request: Request, estimate: int
    ) -> list[tuple[MemberSpec, int]]:
        options: list[tuple[MemberSpec, int]] = []
        for spec in self.team.members:
            cost = self._estimate(spec.name, request)
            if spec.name != current and cost < estimate:
                options.append((spec, cost))
        return sorted(options, key=lambda option: option[1])


def _name(spec: BudgetSpec) -> str:
    return f"{spec.unit}/{spec.period}"
