"""Quotas, as the routing step sees them: the team's spend limits on a member or tier.

Quotas are spend limits (``pinfactory.spend``); this module keeps the names routers and
the ``route`` CLI import. ``routing.quotas`` in a team file is one of the forms a limit
can be declared in (``Team.limits``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinfactory.ledger.base import QuotaCounter
from pinfactory.spend import MemoryQuotaCounter, QuotaQueued, Spend, build_spend, window_start
from pinfactory.team import Period

if TYPE_CHECKING:
    from pinfactory.team import Team


def build_quota_gate(team: Team, counter: QuotaCounter | None = None) -> Spend:
    """The team's quotas alone (in memory unless ``counter`` is given): what ``pinfactory
    route`` applies to a decision; validates ``routing.quotas`` when the team loads."""
    return build_spend(team, counter, only="quota")


__all__ = [
    "MemoryQuotaCounter",
    "Period",
    "QuotaQueued",
    "Spend",
    "build_quota_gate",
    "window_start",
]
