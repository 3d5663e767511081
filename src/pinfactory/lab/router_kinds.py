"""Every lab router kind a grid row may name, built from its spec.

The baselines, rules and plug-ins live in ``lab.routers``; the routing package's
composed routers (semantic, cascade, hybrid) in ``lab.composed``, which builds on
``lab.routers``. This module sits above both, so neither imports the other back.
"""

from __future__ import annotations

from pathlib import Path

from pinfactory.errors import RoutingError
from pinfactory.lab import composed
from pinfactory.lab.routers import (
    BestSingle,
    LabRouter,
    Oracle,
    PythonRouter,
    RandomRouter,
    RouterSpec,
    RulesLab,
)


def build(spec: RouterSpec, seed: int, base: Path) -> LabRouter:
    """The lab router for a grid row; ``base`` is the grid file's folder."""
    kind = spec.resolved_kind
    if kind == "oracle":
        return Oracle(spec.name)
    if kind == "best_single":
        return BestSingle(spec.name, seed=seed)
    if kind == "random":
        return RandomRouter(spec.name, seed=seed)
    if kind == "rules":
        if spec.rules is None:
            raise RoutingError(f"router '{spec.name}': kind rules needs 'rules: FILE'")
        return RulesLab(spec.name, (base / spec.rules).resolve())
    if kind in ("semantic", "cascade", "hybrid"):
        return composed.build(spec, seed, base)
    if spec.target is None:
        raise RoutingError(f"router '{spec.name}': kind python needs 'target: module:Class'")
    return PythonRouter(spec, seed)


__all__ = ["build"]
