"""Load balancing over deployments of one model, against real upstreams on loopback.

The deployments are members of the team; the balanced member books each attempt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from pinfactory.errors import MemberError, MemberRejected, TeamFileError
from pinfactory.members import Completion
from pinfactory.members.balanced import BalancedMember
from pinfactory.members.base import Delta, each
from pinfactory.members.calls import open_tab
from pinfactory.members.composite import FallbackMember
from pinfactory.pipeline import build_members
from pinfactory.request import Request
from pinfactory.team import parse_team
from pinfactory.testing.faults import Fault, FaultUpstream, echo_answer, fault_upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with fault_upstream() as server:
        yield server


def balanced(strategy: str, *urls: str, weights: str = "{}") -> BalancedMember:
    deployments = "".join(
        f"  - {{name: d{i}, kind: openai_http, settings: {{base_url: '{url}', model: m}}}}\n"
        for i, url in enumerate(urls)
    )
    names = ", ".join(f"d{i}" for i in range(len(urls)))
    team = parse_team(
        "members:\n" + deployments
        + f"  - {{name: gpt, kind: balanced, settings: {{members: [{names}], "
        f"strategy: {strategy}, weights: {weights}}}}}\n"
        "routing: {kind: rules, fallback: gpt}\n"
        "upstream: {retries: 0}\n",
        "balanced.yaml",
        {"PINFACTORY_LEDGER": ":memory:"},
    )  # fmt: skip
    member = build_members(team)["gpt"]
    assert isinstance(member, BalancedMember)
    return member


async def test_weighted_spreads_by_weight(upstream: FaultUpstream) -> None:
    member = balanced("weighted", upstream.url, upstream.url, weights="{d0: 3}")
    picks = Counter([(await member.order())[0].name for _ in range(4000)])
    assert 0.7 < picks["d0"] / 4000 < 0.8


async def test_least_busy_prefers_the_idle_deployment(upstream: FaultUpstream) -> None:
    member = balanced("least_busy", upstream.url, upstream.url)
    member.inflight["d0"] = 3
    assert {(await member.order())[0].name for _ in range(50)} == {"d1"}


async def test_lowest_latency_prefers_the_fast_deployment(upstream: FaultUpstream) -> None:
    member = balanced("lowest_latency", upstream.url, upstream.url)
    member.latency_ms.update({"d0": 80.0, "d1": 5.0})
    assert {(await member.order())[0].name for _ in range(50)} == {"d1"}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_deployment_falls_over_to_the_next_and_both_are_booked(
    upstream: FaultUpstream, stream: bool
) -> None:
    member = balanced("ordered", upstream.fault_url(Fault.SERVER_ERROR), upstream.url)
    for part in member.parts:
        await part.open()
    tab = open_tab()
    try:
        request = Request.from_text("which deployment")
        if stream:
            events = [e async for run in member.stream(request) for e in each(run)]
            completion = events[-1]
            text = "".join(e.text if isinstance(e, Delta) else str(e) for e in events[:-1])
            assert text == echo_answer(request.text)
        else:
            completion = await member.complete(request)
    finally:
        for part in member.parts:
            await part.close()
    assert isinstance(completion, Completion)
    assert completion.text == echo_answer("which deployment")
    booked = [(c.member, c.purpose, c.error is None) for c in tab.calls]
    assert booked == [("d0", "answer", False), ("d1", "fallback", True)]


async def test_when_every_deployment_fails_the_error_names_them_all(
    upstream: FaultUpstream,
) -> None:
    member = balanced(
        "weighted", upstream.fault_url(Fault.SERVER_ERROR), upstream.fault_url(Fault.MALFORMED)
    )
    for part in member.parts:
        await part.open()
    try:
        with pytest.raises(MemberError, match="all 2 deployments failed") as caught:
            await member.complete(Request.from_text("anyone"))
    finally:
        for part in member.parts:
            await part.close()
    assert caught.value.member == "gpt"
    assert "'d0'" in caught.value.message and "'d1'" in caught.value.message


def test_weights_must_name_its_members(upstream: FaultUpstream) -> None:
    with pytest.raises(TeamFileError, match="weights name nope"):
        balanced("weighted", upstream.url, weights="{nope: 2}")


@pytest.mark.parametrize("kind", ["balanced", "fallback"])
async def test_a_refusal_that_is_the_callers_fault_is_not_passed_to_the_next_part(
    upstream: FaultUpstream, kind: str
) -> None:
    """An upstream's 422 (a bad parameter value) would be every part's answer: the caller
    gets it at once, with the upstream's status, and only the first part is asked."""
    member = _composite(kind, upstream.fault_url(Fault.UNPROCESSABLE), upstream.url)
    tab = open_tab()
    async with _opened(member):
        with pytest.raises(MemberRejected) as caught:
            await member.complete(Request.from_text("anyone"))
    assert (caught.value.status, caught.value.param) == (422, "temperature")
    assert [(c.member, c.error) for c in tab.calls] == [("d0", "invalid_value")]


async def test_a_prompt_too_long_for_one_part_falls_back_to_the_next(
    upstream: FaultUpstream,
) -> None:
    """``context_length_exceeded`` is the one caller's fault a next part (a longer
    context) may answer: a ``fallback`` member passes it on."""
    member = _composite("fallback", upstream.fault_url(Fault.BAD_REQUEST), upstream.url)
    tab = open_tab()
    async with _opened(member):
        completion = await member.complete(Request.from_text("a long one"))
    assert completion.text == echo_answer("a long one")
    booked = [(c.member, c.error) for c in tab.calls]
    assert booked == [("d0", "context_length_exceeded"), ("d1", None)]


def _composite(kind: str, *urls: str) -> BalancedMember | FallbackMember:
    """A ``balanced`` (ordered) or ``fallback`` member over deployments at ``urls``."""
    deployments = "".join(
        f"  - {{name: d{i}, kind: openai_http, settings: {{base_url: '{url}', model: m}}}}\n"
        for i, url in enumerate(urls)
    )
    names = ", ".join(f"d{i}" for i in range(len(urls)))
    strategy = ", strategy: ordered" if kind == "balanced" else ""
    team = parse_team(
        f"members:\n{deployments}"
        f"  - {{name: gpt, kind: {kind}, settings: {{members: [{names}]{strategy}}}}}\n"
        "routing: {kind: rules, fallback: gpt}\nupstream: {retries: 2}\n",
        "composite.yaml",
        {"PINFACTORY_LEDGER": ":memory:"},
    )
    member = build_members(team)["gpt"]
    assert isinstance(member, (BalancedMember, FallbackMember))
    return member


@asynccontextmanager
async def _opened(member: BalancedMember | FallbackMember) -> AsyncIterator[None]:
    for part in member.parts:
        await part.open()
    try:
        yield
    finally:
        for part in member.parts:
            await part.close()
