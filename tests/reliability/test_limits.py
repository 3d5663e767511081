"""Rate limits over the in-process state, on a clock the test moves."""

from __future__ import annotations

import pytest

from pinfactory.errors import RateLimited
from pinfactory.reliability.limits import RateLimiter, RateLimitSpec, Who
from pinfactory.reliability.state import MemoryState

ALICE = Who(key="k1", user="alice", unit="research")
BOB = Who(key="k2", user="bob", unit="research")


class Clock:
    def __init__(self, now: float = 6_000.0) -> None:  # the start of a minute
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(*specs: RateLimitSpec, clock: Clock | None = None) -> RateLimiter:
    return RateLimiter(list(specs), MemoryState(), clock=clock or Clock())


async def test_requests_per_minute_refuse_with_the_time_to_the_next_minute() -> None:
    clock = Clock()
    limits = limiter(RateLimitSpec(per="unit", rpm=2), clock=clock)
    await limits.admit(ALICE, 10)
    clock.now += 15
    await limits.admit(BOB, 10)  # same unit: same counter
    with pytest.raises(RateLimited, match="unit 'research' is over 2 requests a minute") as caught:
        await limits.admit(ALICE, 10)
    assert caught.value.retry_after_s == pytest.approx(45.0)
    assert caught.value.should_retry is True
    clock.now += 45  # the next minute
    await limits.admit(ALICE, 10)


async def test_a_refused_request_takes_nothing_from_other_limits() -> None:
    limits = limiter(
        RateLimitSpec(per="user", rpm=5), RateLimitSpec(per="unit", name="research", rpm=1)
    )
    await limits.admit(ALICE, 1)
    for _ in range(3):
        with pytest.raises(RateLimited, match="unit"):
            await limits.admit(ALICE, 1)
    in_sales = Who(key="k3", user="alice", unit="sales")
    for _ in range(4):  # the refusals spent none of alice's five requests
        await limits.admit(in_sales, 1)
    with pytest.raises(RateLimited, match="user 'alice' is over 5 requests"):
        await limits.admit(in_sales, 1)


async def test_tokens_per_minute_count_the_answer_too() -> None:
    limits = limiter(RateLimitSpec(per="key", tpm=100))
    admission = await limits.admit(ALICE, 30)
    await limits.done(admission, 60)  # 90 used
    with pytest.raises(RateLimited, match="over 100 tokens a minute"):
        await limits.admit(ALICE, 20)
    await limits.admit(BOB, 20)  # another key, another counter


async def test_a_request_bigger_than_the_whole_limit_is_told_not_to_retry() -> None:
    limits = limiter(RateLimitSpec(per="unit", tpm=100))
    with pytest.raises(RateLimited) as caught:
        await limits.admit(ALICE, 101)
    assert caught.value.should_retry is False


async def test_concurrent_slots_are_given_back() -> None:
    limits = limiter(RateLimitSpec(per="user", name="alice", concurrent=2))
    first = await limits.admit(ALICE, 1)
    await limits.admit(ALICE, 1)
    with pytest.raises(RateLimited, match="2 requests in flight"):
        await limits.admit(ALICE, 1)
    await limits.admit(BOB, 1)  # the limit names alice only
    await limits.done(first, 0)
    await limits.admit(ALICE, 1)


def test_a_limit_needs_something_to_limit() -> None:
    with pytest.raises(ValueError, match="at least one of rpm, tpm, concurrent"):
        RateLimitSpec(per="unit")
