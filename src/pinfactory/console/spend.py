"""Savings and limits for the Spend page: what routing saved, and how full each limit is.

Savings price the traffic actually answered (its summed input and output
tokens and its number of calls) at another member's price: the team's most
expensive member for that mix, and a member the operator picks. Tokens are
counted by each member's own tokenizer, so this is the price of the same
token counts, not of a replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from pinfactory.console.queries import ConsoleQueries, Totals
from pinfactory.ledger.base import from_nano, to_nano
from pinfactory.members.base import Price, Usage
from pinfactory.spend import window_start
from pinfactory.team import SpendLimit, Team

PERIOD_S = {"hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class Counterfactual:
    """The answered traffic priced on one member alone, and what routing saved against it."""

    member: str
    cost_usd: Decimal
    saved_usd: Decimal

    @property
    def saved_share(self) -> float:
        return float(self.saved_usd / self.cost_usd) if self.cost_usd else 0.0


@dataclass(frozen=True, slots=True)
class Savings:
    actual_usd: Decimal
    requests: int
    priciest: Counterfactual | None
    picked: Counterfactual | None


@dataclass(frozen=True, slots=True)
class LimitBar:
    """How much of a budget or quota is used in its current window."""

    kind: str  # "budget" or "quota"
    name: str
    unit: str
    used: str
    limit: str
    fraction: float
    window: str
    resets: float
    on_exhausted: str


def price_traffic(totals: Sequence[Totals], price: Price) -> Decimal:
    """The answered calls and their summed tokens at one price (USD)."""
    calls = sum(t.requests - t.errors for t in totals)
    usage = Usage(sum(t.input_tokens for t in totals), sum(t.output_tokens for t in totals))
    return price.cost(usage) - price.per_call + price.per_call * calls


def savings(team: Team, by_member: Sequence[Totals], picked: str | None) -> Savings:
    """Actual spend of the answered traffic against the priciest member and ``picked``."""
    actual = from_nano(sum(t.nusd for t in by_member))
    requests = sum(t.requests - t.errors for t in by_member)

    def against(name: str) -> Counterfactual:
        cost = price_traffic(by_member, team.member(name).price)
        return Counterfactual(name, cost, cost - actual)

    options = [against(spec.name) for spec in team.members]
    priciest = max(options, key=lambda c: c.cost_usd, default=None)
    chosen = next((c for c in options if c.member == picked), None)
    return Savings(actual, requests, priciest, chosen)


def resets_at(period: str, start: float) -> float:
    """When the window starting at ``start`` ends (UTC hour, day or month)."""
    if period in PERIOD_S:
        return start + PERIOD_S[period]
    return window_start("month", start + 32 * 86400)


async def limit_bars(
    limits: Sequence[SpendLimit],
    units: Sequence[str],
    queries: ConsoleQueries,
    unit: str | None,
) -> list[LimitBar]:
    """Every spend limit (for ``unit`` only, if given) with its current usage: budgets as
    one bar each, quotas and other limits one bar per unit they count."""
    bars: list[LimitBar] = []
    for spec in (limit for limit in limits if limit.source == "budget"):
        if unit is None or spec.unit == unit:
            start = window_start(spec.period)
            key = spec.key(spec.unit)
            _, nusd = (await queries.counters(key, start)).get(key, (0, 0))
            bars.append(budget_bar(spec, nusd, start))
    for policy in (limit for limit in limits if limit.source != "budget"):
        start = window_start(policy.period)
        counters = await queries.counters(f"quota:{policy.name}:", start)
        for name in [policy.unit] if policy.unit != "*" else units:
            if unit is None or name == unit:
                calls, nusd = counters.get(policy.key(name), (0, 0))
                bars.append(quota_bar(policy, name, calls, nusd, start))
    return bars


def budget_bar(spec: SpendLimit, nusd: int, start: float) -> LimitBar:
    """A unit budget that has ``nusd`` nano-dollars booked in the window from ``start``."""
    limit = to_nano(spec.max_spend_usd or Decimal(0))
    return LimitBar(
        "budget",
        f"{spec.unit}/{spec.period}",
        spec.unit,
        f"${from_nano(nusd):.4f}",
        f"${spec.max_spend_usd or 0:.2f}",
        nusd / limit if limit else 1.0,
        f"this {spec.period} (UTC)",
        resets_at(spec.period, start),
        spec.on_exhausted,
    )


def quota_bar(policy: SpendLimit, unit: str, calls: int, nusd: int, start: float) -> LimitBar:
    """A quota's counter for one unit: the fuller of its call and spend limits."""
    fractions: list[float] = []
    used: list[str] = []
    limits: list[str] = []
    if policy.max_calls is not None:
        fractions.append(calls / policy.max_calls if policy.max_calls else 1.0)
        used.append(f"{calls} calls")
        limits.append(f"{policy.max_calls} calls")
    if policy.max_spend_usd is not None:
        cap = to_nano(policy.max_spend_usd)
        fractions.append(nusd / cap if cap else 1.0)
        used.append(f"${from_nano(nusd):.4f}")
        limits.append(f"${policy.max_spend_usd:.2f}")
    if policy.member or policy.tier:
        target = f"member {policy.member}" if policy.member else f"tier {policy.tier}"
    else:
        target = "every member"
    downgrade = f" to {policy.downgrade_to}" if policy.downgrade_to else ""
    return LimitBar(
        "quota",
        f"{policy.name} ({target})",
        unit,
        " / ".join(used),
        " / ".join(limits),
        max(fractions, default=0.0),
        f"this {policy.period} (UTC)",
        resets_at(policy.period, start),
        policy.on_exhausted + downgrade,
    )
