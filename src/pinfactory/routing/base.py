"""The one interface every router implements, and the decision it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pinfactory.errors import TeamFileError
from pinfactory.request import Request

if TYPE_CHECKING:
    from pinfactory.members.base import Completion
    from pinfactory.routing.table import RoutingTable
    from pinfactory.team import Team

MemberTable = dict[str, tuple[str, Decimal]]
"""Each available member's tier and the estimated cost of a typical call."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Which member answers, and why.

    ``scores`` holds one number per candidate member (higher is better for
    that router); ``reason`` is for people; ``fallback`` is true when no
    route claimed the request and the declared fallback took it; ``trail``
    lists, for a cascade, every tier tried and why it escalated.
    """

    member: str
    reason: str
    router: str
    scores: Mapping[str, float] = field(default_factory=dict)
    confidence: float = 1.0
    estimated_cost_usd: Decimal = Decimal(0)
    tier: str | None = None
    fallback: bool = False
    rule: str | None = None
    trail: tuple[str, ...] = ()
    propensity: float | None = None
    """For a router that explores: the probability it had of choosing ``member``."""
    context: tuple[float, ...] = ()
    """For a router that learns online: the features it chose on, so that any worker
    reading the ledger can learn from the outcome (``routing/online.py``)."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "member": self.member,
            "reason": self.reason,
            "router": self.router,
            "scores": dict(self.scores),
            "confidence": self.confidence,
            "estimated_cost_usd": float(self.estimated_cost_usd),
            "tier": self.tier,
            "fallback": self.fallback,
            "rule": self.rule,
            "trail": list(self.trail),
        }
        if self.propensity is not None:
            body["propensity"] = self.propensity
        if self.context:
            body["context"] = list(self.context)
        return body


@runtime_checkable
class Router(Protocol):
    """Decides which member answers a request.

    Follows the scikit-learn habit: the constructor stores configuration,
    ``fit`` (where the router learns) returns ``self``, learned state ends in
    ``_``, and ``save``/``load`` persist it.
    """

    @property
    def kind(self) -> str: ...

    def decide(self, request: Request) -> Decision: ...


CallMember = Callable[[str], Awaitable["Completion"]]
"""Calls one member by name on the request being answered."""


@runtime_checkable
class TieredRouter(Router, Protocol):
    """A router that may try several members in turn (a cascade).

    The pipeline calls :meth:`answer` instead of calling ``decision.member``
    itself; the returned decision names the member whose answer was kept and
    its ``trail`` records every tier tried.
    """

    async def answer(
        self, request: Request, decision: Decision, call: CallMember
    ) -> tuple[Decision, Completion]: ...


@runtime_checkable
class TrainableRouter(Router, Protocol):
    """A router that learns from a :class:`~pinfactory.routing.table.RoutingTable`."""

    def fit(self, table: RoutingTable) -> TrainableRouter: ...

    def save(self, path: Path) -> None: ...


def member_table(team: Team, input_tokens: int = 64, output_tokens: int = 256) -> MemberTable:
    """Each enabled member's tier and the cost of a typical call."""
    return {m.name: (m.tier, m.price.estimate(input_tokens, output_tokens)) for m in team.members}


def resolve_member(members: MemberTable, target: str) -> str | None:
    """The member a route target names now: itself, or the cheapest of ``tier:NAME``.

    None when the member (or every member of the tier) is not enabled; with no
    table at all (a router used offline, as the lab does) the target as written.
    """
    if not members:
        return target
    if target.startswith("tier:"):
        tier = target.removeprefix("tier:")
        in_tier = [(cost, name) for name, (t, cost) in members.items() if t == tier]
        return min(in_tier)[1] if in_tier else None
    return target if target in members else None


def member_cost(members: MemberTable, member: str) -> Decimal:
    """The estimated cost of a typical call to ``member`` (0 when unknown)."""
    return members[member][1] if member in members else Decimal(0)


def member_tier(members: MemberTable, member: str) -> str | None:
    return members[member][0] if member in members else None


ENCODERS = ("minilm-static", "minilm")


def check_encoder(name: str) -> str:
    """``name`` if it is an encoder a team file may name, else a :class:`TeamFileError`."""
    if name not in ENCODERS:
        raise TeamFileError(f"unknown encoder '{name}'; allowed: {', '.join(ENCODERS)}")
    return name
