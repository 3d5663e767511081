"""The circuit breaker over the in-process state, on a clock the test moves."""

from __future__ import annotations

import pytest

from pinfactory.reliability.breaker import (
    BreakerSpec,
    BreakerState,
    CircuitBreaker,
    MemberUnavailable,
)
from pinfactory.reliability.state import MemoryState


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, state: MemoryState | None = None) -> CircuitBreaker:
    spec = BreakerSpec(failures=3, window_s=10, cooldown_s=5)
    return CircuitBreaker("remote", spec, state or MemoryState(), clock=clock)


async def test_opens_after_n_failures_in_a_window_and_refuses_with_the_time_left() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        await b.admit()
        await b.failed()
    clock.now += 2
    with pytest.raises(MemberUnavailable) as caught:
        await b.admit()
    assert caught.value.status == 503
    assert caught.value.retry_after_s == pytest.approx(3.0)
    assert (await b.current())[0] is BreakerState.OPEN


async def test_failures_spread_over_windows_do_not_open_it() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(4):
        await b.admit()
        await b.failed()
        clock.now += 6  # two failures per 10 s window at most
    await b.admit()
    assert b.last_seen is BreakerState.CLOSED


async def test_half_open_lets_one_probe_through_and_its_success_closes() -> None:
    clock = Clock()
    state = MemoryState()
    b, other = breaker(clock, state), breaker(clock, state)  # two callers, one shared state
    for _ in range(3):
        await b.failed()
    clock.now += 5
    await b.admit()  # the probe
    with pytest.raises(MemberUnavailable):
        await other.admit()  # only one probe at a time
    await b.succeeded()
    await other.admit()
    assert (await other.current())[0] is BreakerState.CLOSED


async def test_a_failed_probe_opens_it_again_at_once() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        await b.failed()
    clock.now += 5
    await b.admit()
    await b.failed()
    assert (await b.current()) == (BreakerState.OPEN, pytest.approx(5.0))


async def test_a_disabled_breaker_never_refuses() -> None:
    clock = Clock()
    b = CircuitBreaker("remote", BreakerSpec(enabled=False, failures=1), MemoryState(), clock=clock)
    for _ in range(5):
        await b.admit()
        await b.failed()
    await b.admit()
