"""The one interface every router implements, and the decision it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pinfactory.errors import TeamFileError
from pinfactory.request import Request
from pinfactory.tiers import (
    TYPICAL_INPUT_TOKENS,
    TYPICAL_OUTPUT_TOKENS,
    MemberTable,
    member_cost,
    member_tier,
    resolve_member,
    table_of,
)

if TYPE_CHECKING:
    from pinfactory.members.base import Member
    from pinfactory.routing.table import RoutingTable
    from pinfactory.team import Team


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
    start: str | None = None

    @property
    def first(self) -> str:
        """The member the request goes to first: ``start`` for a composite, else ``member``."""
        return self.start or self.member

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
            "start": self.start,
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


@runtime_checkable
class ComposingRouter(Router, Protocol):
    """A router whose decisions may name a member it made of the team's members.

    A cascade's tiers are one :class:`~pinfactory.members.composite.CascadeMember`:
    its decisions name that member, which the pipeline calls like any other
    (exactly one member per request; no special case for tiers).
    """

    def composites(self) -> Sequence[Member]:
        """The members this router made (unbound: the pipeline binds their parts)."""


@runtime_checkable
class TrainableRouter(Router, Protocol):
    """A router that learns from a :class:`~pinfactory.routing.table.RoutingTable`."""

    def fit(self, table: RoutingTable) -> TrainableRouter: ...

    def save(self, path: Path) -> None: ...


def member_table(team: Team, input_tokens: int = 64, output_tokens: int = 256) -> MemberTable:
    """Each enabled member's tier and the cost of a typical call (``tiers.table_of``)."""
    if (input_tokens, output_tokens) == (TYPICAL_INPUT_TOKENS, TYPICAL_OUTPUT_TOKENS):
        return table_of(team.members)
    return {m.name: (m.tier, m.price.estimate(input_tokens, output_tokens)) for m in team.members}


ENCODERS = ("minilm-static", "minilm")


def check_encoder(name: str) -> str:
    """``name`` if it is an encoder a team file may name, else a :class:`TeamFileError`."""
    if name not in ENCODERS:
        raise TeamFileError(f"unknown encoder '{name}'; allowed: {', '.join(ENCODERS)}")
    return name


__all__ = [
    "ComposingRouter",
    "Decision",
    "MemberTable",
    "Router",
    "TrainableRouter",
    "check_encoder",
    "member_cost",
    "member_table",
    "member_tier",
    "resolve_member",
]
