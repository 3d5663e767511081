"""Which member a route target names: the one tier resolver and its one cost basis.

A route target (a rule's ``route``, a cascade's tier, a composite's part, a
limit's ``downgrade_to``, verification's ``escalate_to``) is a member's name
or ``tier:NAME``, the cheapest member of that tier. "Cheapest" is judged on one
basis everywhere: the price of a typical call (:data:`TYPICAL_INPUT_TOKENS` in,
:data:`TYPICAL_OUTPUT_TOKENS` out). This module sits below routing, members,
spend and verification and imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

TIER_PREFIX = "tier:"
TYPICAL_INPUT_TOKENS = 64
TYPICAL_OUTPUT_TOKENS = 256

MemberTable = dict[str, tuple[str, Decimal]]
"""Each available member's tier and the estimated cost of a typical call (USD)."""


class Priced(Protocol):
    """Anything priced per call: a ``members.base.Price``."""

    def estimate(self, input_tokens: int, output_tokens: int = ...) -> Decimal: ...


class Tiered(Protocol):
    """A member or a member's spec: a name, a tier and a price."""

    @property
    def name(self) -> str: ...

    @property
    def tier(self) -> str: ...

    @property
    def price(self) -> Priced: ...


def typical_cost(price: Priced) -> Decimal:
    """The one cost basis: a typical call's price in USD."""
    return price.estimate(TYPICAL_INPUT_TOKENS, TYPICAL_OUTPUT_TOKENS)


def table_of(members: Iterable[Tiered], *, exclude: str | None = None) -> MemberTable:
    """The member table of ``members`` (specs or members), less ``exclude``."""
    return {m.name: (m.tier, typical_cost(m.price)) for m in members if m.name != exclude}


def tier_of(target: str) -> str | None:
    """The tier a ``tier:NAME`` target names; None for a member's name."""
    return target[len(TIER_PREFIX) :] if target.startswith(TIER_PREFIX) else None


def names_unknown_member(target: str, declared: Iterable[str]) -> bool:
    """True when ``target`` is a member's name that is not among ``declared``."""
    return tier_of(target) is None and target not in set(declared)


def resolve_member(members: MemberTable, target: str) -> str | None:
    """The member a route target names now: itself, or the cheapest of ``tier:NAME``.

    None when the member (or every member of the tier) is not enabled; with no
    table at all (a router used offline, as the lab does) the target as written.
    """
    if not members:
        return target
    tier = tier_of(target)
    if tier is not None:
        in_tier = [(cost, name) for name, (t, cost) in members.items() if t == tier]
        return min(in_tier)[1] if in_tier else None
    return target if target in members else None


def member_cost(members: MemberTable, member: str) -> Decimal:
    """The estimated cost of a typical call to ``member`` (0 when unknown)."""
    return members[member][1] if member in members else Decimal(0)


def member_tier(members: MemberTable, member: str) -> str | None:
    """The tier of ``member``; None when it is not in the table."""
    return members[member][0] if member in members else None


@dataclass(frozen=True, slots=True)
class RouterContext:
    """What a router may know of its team: the member table, the fallback, the folder
    its files are relative to (``base``), and the names the team file declares."""

    members: MemberTable = field(default_factory=dict)
    fallback: str = ""
    base: Path = Path(".")
    declared: frozenset[str] = frozenset()

    def resolve(self, target: str) -> str | None:
        """The member ``target`` names now (see :func:`resolve_member`)."""
        return resolve_member(self.members, target)

    def cost(self, member: str) -> Decimal:
        return member_cost(self.members, member)

    def tier(self, member: str) -> str | None:
        return member_tier(self.members, member)

    def unknown(self, target: str) -> bool:
        """True when ``target`` names a member the team file does not declare."""
        return names_unknown_member(target, self.declared)

    def allowed(self) -> str:
        """The declared members, for an error message."""
        return ", ".join(sorted(self.declared))

    def path(self, name: str) -> Path:
        """A file the team file names, relative to the team file's folder."""
        found = Path(name)
        return found if found.is_absolute() else self.base / found
