"""A circuit breaker per member: stop calling an upstream that keeps failing.

    closed     calls go through; failures are counted in windows of ``window_s``
    open       after ``failures`` failures in one window: calls are refused at once (503,
               ``Retry-After`` the time left) for ``cooldown_s``
    half-open  after the cool-down one call (the probe) goes through, others are refused;
               its success closes the breaker, its failure opens it again

The state lives in :mod:`pinfactory.reliability.state`, so with Redis a breaker one
worker opened is open for every worker. Times are wall-clock seconds (shared across hosts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import MemberError
from pinfactory.reliability.state import SharedState


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def gauge(self) -> int:
        """0 closed, 1 half-open, 2 open (the ``pinfactory_breaker_state`` metric)."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


class BreakerSpec(BaseModel):
    """When a member's breaker opens and how long it stays open."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    failures: int = Field(default=5, gt=0, description="failures in one window that open it")
    window_s: float = Field(default=30.0, gt=0, description="length of a counting window")
    cooldown_s: float = Field(default=10.0, gt=0, description="how long it stays open")


class MemberUnavailable(MemberError):
    """The member's breaker is open: the call was not attempted."""

    code = "member_unavailable"
    should_retry = True  # after Retry-After, the breaker lets a probe through

    def __init__(self, member: str, retry_after_s: float) -> None:
        super().__init__(
            member,
            f"circuit breaker open after repeated failures; next try in {retry_after_s:.1f}s",
            status=503,
        )
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """One member's breaker over a :class:`SharedState`.

    ``admit()`` before a call (raises :class:`MemberUnavailable` when open),
    then ``succeeded()`` or ``failed()`` after it.
    """

    def __init__(
        self,
        member: str,
        spec: BreakerSpec,
        state: SharedState,
        *,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.member = member
        self.spec = spec
        self.state = state
        self.clock = clock
        self.on_change = on_change
        self._key = f"breaker:{member}"
        self._open_until = self._key + ":open_until"
        self.last_seen = BreakerState.CLOSED
        self._probing = False  # this process holds the half-open probe

    async def current(self) -> tuple[BreakerState, float]:
        """The state and, when open, the seconds until a probe may go through."""
        return self._read(await self.state.get(self._open_until))

    def _read(self, open_until: str | None) -> tuple[BreakerState, float]:
        if open_until is None:
            return BreakerState.CLOSED, 0.0
        left = float(open_until) - self.clock()
        if left > 0:
            return BreakerState.OPEN, left
        return BreakerState.HALF_OPEN, 0.0

    async def admit(self) -> None:
        """Let a call through, or raise :class:`MemberUnavailable`."""
        if not self.spec.enabled:
            return
        open_until = await self.state.get(self._open_until)
        if open_until is None:  # closed: the common case, one read
            if self.last_seen is not BreakerState.CLOSED:
                self._seen(BreakerState.CLOSED)
            return
        state, left = self._read(open_until)
        if state is BreakerState.HALF_OPEN and await self.state.set(
            self._key + ":probe", "1", self.spec.cooldown_s, only_new=True
        ):
            self._probing = True
            self._seen(state)
            return
        self._seen(state)
        raise MemberUnavailable(self.member, left or self.spec.cooldown_s)

    async def succeeded(self) -> None:
        if not self.spec.enabled or (self.last_seen is BreakerState.CLOSED and not self._probing):
            return
        self._probing = False
        await self.state.delete(self._open_until, self._key + ":probe", self._window_key())
        self._seen(BreakerState.CLOSED)

    async def failed(self) -> None:
        if not self.spec.enabled:
            return
        if self._probing:  # the probe failed: open again at once
            self._probing = False
            await self._open()
            return
        count = await self.state.incr(self._window_key(), 1, self.spec.window_s * 2)
        if count >= self.spec.failures:
            await self._open()

    async def _open(self) -> None:
        until = self.clock() + self.spec.cooldown_s
        await self.state.set(self._open_until, repr(until), self.spec.cooldown_s * 10)
        await self.state.delete(self._key + ":probe", self._window_key())
        self._seen(BreakerState.OPEN)

    def _window_key(self) -> str:
        return f"{self._key}:fails:{math.floor(self.clock() / self.spec.window_s)}"

    def _seen(self, state: BreakerState) -> None:
        if state is not self.last_seen:
            self.last_seen = state
            if self.on_change is not None:
                self.on_change(self.member, state)


def breakers_of(members: Mapping[str, Any]) -> dict[str, CircuitBreaker]:
    """The breaker of each member that has one (members calling an upstream over HTTP)."""
    found = {}
    for name, member in members.items():
        breaker = getattr(member, "breaker", None)
        if isinstance(breaker, CircuitBreaker):
            found[name] = breaker
        parts = getattr(member, "parts", None)  # composite members: their parts' breakers
        if isinstance(parts, list | tuple):
            found.update(breakers_of({part.name: part for part in parts}))
    return found


class BreakerCollector:
    """``pinfactory_breaker_state{member}`` for Prometheus: 0 closed, 1 half-open, 2 open.

    Reads the state each breaker last saw (updated on every call), so a scrape makes no
    round trip to the shared state.
    """

    def __init__(self, breakers: Callable[[], Iterable[CircuitBreaker]]) -> None:
        self.breakers = breakers

    def collect(self) -> Iterator[Any]:

        family = GaugeMetricFamily(
            "pinfactory_breaker_state",
            "Circuit breaker per member: 0 closed, 1 half-open, 2 open",
            labels=["member"],
        )
        for breaker in self.breakers():
            family.add_metric([breaker.member], breaker.last_seen.gauge)
        yield family
