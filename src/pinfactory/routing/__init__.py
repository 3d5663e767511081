"""Routers: which member answers a request, and why."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pinfactory.errors import RoutingError, TeamFileError
from pinfactory.routing.base import (
    ComposingRouter,
    Decision,
    MemberTable,
    Router,
    member_table,
)
from pinfactory.routing.cascade import Cascade
from pinfactory.routing.classifier import ClassifierRouter
from pinfactory.routing.cluster import ClusterRouter
from pinfactory.routing.gumbel import GumbelRouter
from pinfactory.routing.hybrid import HybridRouter
from pinfactory.routing.irt import IRTRouter
from pinfactory.routing.learned_kinds import LEARNED_KINDS, load_router
from pinfactory.routing.online import BanditRouter, Learner
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.rules import RulesRouter
from pinfactory.routing.semantic import SemanticRouter
from pinfactory.tiers import RouterContext

if TYPE_CHECKING:
    from pinfactory.team import Team

RouterFactory = Callable[[dict[str, Any], RouterContext], Router]
"""Builds a router from its ``routing:`` section and what it may know of the team."""

ROUTER_KINDS: dict[str, RouterFactory] = {
    "rules": RulesRouter.from_config,
    "semantic": SemanticRouter.from_config,
    "classifier": ClassifierRouter.from_config,
    "quality": QualityRouter.from_config,
    "gumbel": GumbelRouter.from_config,
    "cluster": ClusterRouter.from_config,
    "irt": IRTRouter.from_config,
    "cascade": Cascade.from_config,
    "hybrid": HybridRouter.from_config,
    "bandit": BanditRouter.from_config,
}

__all__ = [
    "LEARNED_KINDS",
    "ROUTER_KINDS",
    "ComposingRouter",
    "Decision",
    "Learner",
    "MemberTable",
    "Router",
    "build_router",
    "load_router",
    "member_table",
]


def build_router(team: Team) -> Router:
    """Build the router a team file declares; errors name the kind and field."""
    config = team.spec.routing.model_dump()
    config.pop("quotas", None)  # the quota step's, not the router's (spend limits: spend.py)
    team.limits()  # validates routing.quotas (spend limits: spend.py) at load time
    factory = ROUTER_KINDS.get(config["kind"])
    if factory is None:
        allowed = ", ".join(sorted(ROUTER_KINDS))
        raise TeamFileError(f"unknown router kind '{config['kind']}'; allowed: {allowed}")
    try:
        return factory(config, team.router_context())
    except RoutingError as exc:
        raise TeamFileError(exc.message) from exc
