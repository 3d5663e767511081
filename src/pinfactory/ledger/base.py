"""What the ledger records for every request, and the interface of its stores."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

NANO = Decimal("1e-9")


def to_nano(usd: Decimal) -> int:
    """Dollars as integer nano-dollars: exact sums, and a cheap call still counts."""
    return int((usd / NANO).to_integral_value())


def from_nano(nano: int) -> Decimal:
    return (Decimal(nano) * NANO).normalize() if nano else Decimal(0)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One request, answered or refused. ``status`` is the HTTP status sent."""

    request_id: str
    unit: str
    user: str
    model: str
    member: str | None
    router: str | None
    reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: float
    status: int
    error: str | None = None
    stream: bool = False
    tags: tuple[str, ...] = ()
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class SpendRow:
    key: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


class Ledger(Protocol):
    """Where every request is written; stores open in the app's lifespan."""

    location: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def record(self, entry: LedgerEntry) -> None:
        """Durably write the entry; return only once it is committed."""

    async def spend(self, by: str, since: float | None = None) -> list[SpendRow]:
        """Spend grouped by ``unit``, ``user``, ``member`` or ``tag``."""

    async def entries(self, limit: int = 100) -> list[LedgerEntry]:
        """The most recent entries, newest first."""
