"""Routers: which member answers a request, and why."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pinfactory.errors import TeamFileError
from pinfactory.routing.base import Decision, MemberTable, Router, member_table
from pinfactory.routing.rules import RulesRouter

if TYPE_CHECKING:
    from pinfactory.team import Team

RouterFactory = Callable[[dict[str, Any], "Team"], Router]

ROUTER_KINDS: dict[str, RouterFactory] = {
    "rules": RulesRouter.from_config,
}

__all__ = ["ROUTER_KINDS", "Decision", "MemberTable", "Router", "build_router", "member_table"]


def build_router(team: Team) -> Router:
    """Build the router a team file declares; errors name the kind and field."""
    config = team.spec.routing.model_dump()
    factory = ROUTER_KINDS.get(config["kind"])
    if factory is None:
        allowed = ", ".join(sorted(ROUTER_KINDS))
        raise TeamFileError(f"unknown router kind '{config['kind']}'; allowed: {allowed}")
    return factory(config, team)
