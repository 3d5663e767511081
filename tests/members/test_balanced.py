"""Load balancing over deployments of one model, against real upstreams on loopback."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from pinfactory.errors import MemberError
from pinfactory.members import Completion
from pinfactory.members.balanced import BalancedMember, BalancedSettings
from pinfactory.members.base import Delta
from pinfactory.request import Request
from pinfactory.testing.faults import Fault, FaultUpstream, echo_answer, fault_upstream

FAST = {"retries": 0, "backoff_s": 0.01}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with fault_upstream() as server:
        yield server


def balanced(strategy: str, *urls: str, weights: tuple[float, ...] = ()) -> BalancedMember:
    deployments = [
        {"name": f"d{i}", "settings": {"base_url": url, "model": "m"}, "weight": w}
        for i, (url, w) in enumerate(zip(urls, weights or (1.0,) * len(urls), strict=True))
    ]
    settings = BalancedSettings.model_validate(
        {"strategy": strategy, "deployments": deployments, "upstream": FAST}
    )
    return BalancedMember("gpt", settings, timeout_s=5)


async def test_weighted_spreads_by_weight(upstream: FaultUpstream) -> None:
    member = balanced("weighted", upstream.url, upstream.url, weights=(3.0, 1.0))
    picks = Counter(member.order()[0].name for _ in range(4000))
    assert 0.7 < picks["d0"] / 4000 < 0.8


async def test_least_busy_prefers_the_idle_deployment(upstream: FaultUpstream) -> None:
    member = balanced("least_busy", upstream.url, upstream.url)
    member.inflight["d0"] = 3
    assert {member.order()[0].name for _ in range(50)} == {"d1"}


async def test_lowest_latency_prefers_the_fast_deployment(upstream: FaultUpstream) -> None:
    member = balanced("lowest_latency", upstream.url, upstream.url)
    member.latency_ms.update({"d0": 80.0, "d1": 5.0})
    assert {member.order()[0].name for _ in range(50)} == {"d1"}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_deployment_falls_over_to_the_next(
    upstream: FaultUpstream, stream: bool
) -> None:
    member = balanced("lowest_latency", upstream.fault_url(Fault.SERVER_ERROR), upstream.url)
    member.latency_ms.update({"d0": 1.0, "d1": 50.0})  # the broken one is tried first
    await member.open()
    try:
        request = Request.from_text("which deployment")
        if stream:
            events = [e async for e in member.stream(request)]
            completion = events[-1]
            text = "".join(e.text if isinstance(e, Delta) else e for e in events[:-1])
            assert text == echo_answer(request.text)
        else:
            completion = await member.complete(request)
    finally:
        await member.close()
    assert isinstance(completion, Completion)
    assert completion.text == echo_answer("which deployment")


async def test_when_every_deployment_fails_the_error_names_them_all(
    upstream: FaultUpstream,
) -> None:
    member = balanced(
        "weighted", upstream.fault_url(Fault.SERVER_ERROR), upstream.fault_url(Fault.MALFORMED)
    )
    await member.open()
    try:
        with pytest.raises(MemberError, match="all 2 deployments failed") as caught:
            await member.complete(Request.from_text("anyone"))
    finally:
        await member.close()
    assert caught.value.member == "gpt"
    assert "'d0'" in caught.value.message and "'d1'" in caught.value.message


def test_deployment_names_are_unique() -> None:
    with pytest.raises(ValueError, match="must be unique"):
        BalancedSettings.model_validate(
            {"deployments": [{"name": "a", "settings": {}}, {"name": "a", "settings": {}}]}
        )
