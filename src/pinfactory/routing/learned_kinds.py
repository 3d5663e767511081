"""The learned router kinds by name, and loading a saved router of any of them."""

from __future__ import annotations

from pathlib import Path

from pinfactory.errors import RoutingError
from pinfactory.routing.classifier import ClassifierRouter
from pinfactory.routing.cluster import ClusterRouter
from pinfactory.routing.gumbel import GumbelRouter
from pinfactory.routing.irt import IRTRouter
from pinfactory.routing.learned import LearnedRouter, read_router_file
from pinfactory.routing.quality import QualityRouter

LEARNED_KINDS: dict[str, type[LearnedRouter]] = {
    "classifier": ClassifierRouter,
    "quality": QualityRouter,
    "gumbel": GumbelRouter,
    "cluster": ClusterRouter,
    "irt": IRTRouter,
}


def load_router(path: str | Path) -> LearnedRouter:
    """Load a router file of any learned kind (the header names the kind).

    Raises :class:`RoutingError` for a kind that is not learned.
    """
    source = Path(path)
    kind = read_router_file(source)[0]["kind"]
    if kind not in LEARNED_KINDS:
        raise RoutingError(f"{source}: unknown router kind '{kind}'")
    return LEARNED_KINDS[kind].load(source)


__all__ = ["LEARNED_KINDS", "load_router"]
