"""The observers a team file asks for (metrics, traces, the access log).

Kept out of the package's ``__init__`` so importing ``pinfactory.observe`` never
imports ``team.py`` (which itself imports ``observe.config``): no import cycle.
"""

from __future__ import annotations

from pinfactory.observe.access_log import AccessLog, wanted
from pinfactory.observe.base import Observer, Observers
from pinfactory.observe.metrics import Metrics
from pinfactory.team import Team


def build_observers(team: Team) -> Observers:
    """The observers the team file asks for; none when tracing and metrics are off."""
    spec = team.spec.observe
    observers: list[Observer] = []
    if spec.metrics.enabled:
        observers.append(Metrics())
    if spec.tracing.exporter != "none":
        # start-up time: a team that does not trace never loads the OpenTelemetry SDK
        from pinfactory.observe.tracing import Tracing

        kinds = {m.name: m.kind for m in team.members}
        observers.append(Tracing(spec.tracing, team=team.name, member_kinds=kinds))
    if wanted(spec.access_log):
        observers.append(AccessLog())
    return Observers(observers)


__all__ = ["build_observers"]
