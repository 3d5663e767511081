"""The openai_http transport against a real upstream that fails on purpose.

Each test points a member at a path of the fault upstream that picks its fault
(``/fault/500*2/v1``: the first two requests fail, then it behaves), so the
upstream's own request count shows what was retried and what was not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from pinfactory.errors import MemberError, MemberRejected, MemberTimeout
from pinfactory.members import Completion
from pinfactory.members.base import Delta, each
from pinfactory.members.openai_http import OpenAIHTTPMember, OpenAIHTTPSettings
from pinfactory.members.upstream import retry_after_seconds
from pinfactory.reliability.breaker import BreakerState, MemberUnavailable
from pinfactory.request import Request
from pinfactory.testing.faults import Fault, FaultPlan, FaultUpstream, echo_answer, fault_upstream

QUESTION = "how many moons has Mars"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    plan = FaultPlan(slow_s=3.0, retry_after_s=1, oversize_bytes=3 * 1024 * 1024, hold_s=3.0)
    with fault_upstream(plan) as server:
        yield server


@asynccontextmanager
async def _member(
    base_url: str, timeout_s: float = 5.0, **upstream: Any
) -> AsyncIterator[OpenAIHTTPMember]:
    """An open ``openai_http`` member named ``remote`` with fast backoffs; closed after."""
    spec = {"backoff_s": 0.01, "backoff_max_s": 0.05, **upstream}
    settings = OpenAIHTTPSettings(base_url=base_url, model="m", upstream=spec)
    member = OpenAIHTTPMember("remote", settings, timeout_s=timeout_s)
    await member.open()
    try:
        yield member
    finally:
        await member.close()


async def _stream(member: OpenAIHTTPMember) -> AsyncIterator[str | Completion]:
    async for run in member.stream(Request.from_text(QUESTION)):
        for event in each(run):
            yield event.text if isinstance(event, Delta) else event  # what the client reads


async def _drain(member: OpenAIHTTPMember, seen: list[str | Completion] | None = None) -> None:
    """Read the member's stream to its end, keeping each event in ``seen``."""
    async for event in _stream(member):
        if seen is not None:
            seen.append(event)


async def _ask(member: OpenAIHTTPMember, stream: bool) -> None:
    if stream:
        await _drain(member)
    else:
        await member.complete(Request.from_text(QUESTION))


async def test_healthy_upstream_answers_what_it_sent(upstream: FaultUpstream) -> None:
    async with _member(upstream.url) as member:
        completion = await member.complete(Request.from_text(QUESTION))
        events = [e async for e in _stream(member)]
    assert completion.text == echo_answer(QUESTION)
    assert "".join(e for e in events if isinstance(e, str)) == echo_answer(QUESTION)
    assert isinstance(events[-1], Completion) and events[-1].text == echo_answer(QUESTION)


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.RESET, Fault.TRUNCATED])
async def test_retryable_faults_are_retried_until_the_upstream_answers(
    upstream: FaultUpstream, fault: Fault
) -> None:
    async with _member(upstream.fault_url(fault, 2), retries=2) as member:
        completion = await member.complete(Request.from_text(QUESTION))
    assert completion.text == echo_answer(QUESTION)
    assert upstream.hits(fault, 2) == 3  # two failures, one success


async def test_without_retries_the_first_failure_is_a_502_naming_the_member(
    upstream: FaultUpstream,
) -> None:
    async with _member(upstream.fault_url(Fault.SERVER_ERROR, 1), retries=0) as member:
        with pytest.raises(MemberError) as caught:
            await member.complete(Request.from_text(QUESTION))
    assert caught.value.status == 502
    assert caught.value.member == "remote"
    assert "HTTP 500" in caught.value.message


@pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.BAD_USAGE])
async def test_garbage_is_a_502_and_never_retried(upstream: FaultUpstream, fault: Fault) -> None:
    async with _member(upstream.fault_url(fault, 5), retries=3) as member:
        with pytest.raises(MemberError) as caught:
            await member.complete(Request.from_text(QUESTION))
    assert caught.value.status == 502
    assert "garbled" in caught.value.message or "garbage" in caught.value.message
    assert upstream.hits(fault, 5) == 1


async def test_a_429_too_long_to_wait_is_passed_on_with_its_retry_after(
    upstream: FaultUpstream,
) -> None:
    async with _member(upstream.fault_url(Fault.RATE_LIMITED, 3), max_retry_after_s=0.5) as member:
        with pytest.raises(MemberError) as caught:
            await member.complete(Request.from_text(QUESTION))
    assert caught.value.status == 429
    assert caught.value.retry_after_s == 1.0
    assert upstream.hits(Fault.RATE_LIMITED, 3) == 1


async def test_a_short_retry_after_is_waited_out(upstream: FaultUpstream) -> None:
    async with _member(upstream.fault_url(Fault.RATE_LIMITED, 1), max_retry_after_s=2) as member:
        completion = await member.complete(Request.from_text(QUESTION))
    assert completion.text == echo_answer(QUESTION)
    assert upstream.hits(Fault.RATE_LIMITED, 1) == 2


async def test_slow_upstream_times_out_within_the_total(upstream: FaultUpstream) -> None:
    async with _member(upstream.fault_url(Fault.SLOW, 9), timeout_s=0.3, retries=2) as member:
        with pytest.raises(MemberTimeout) as caught:
            await member.complete(Request.from_text(QUESTION))
    assert caught.value.status == 504
    assert upstream.hits(Fault.SLOW, 9) == 1  # a timeout is not retried


async def test_keepalives_without_a_token_hit_the_first_token_timeout(
    upstream: FaultUpstream,
) -> None:
    async with _member(upstream.fault_url(Fault.KEEPALIVE), first_token_timeout_s=0.5) as member:
        with pytest.raises(
            MemberTimeout, match=r"no token within 0\.5s \(first_token_timeout_s\)$"
        ):
            await _drain(member)


async def test_a_stream_that_stalls_after_its_first_token_hits_the_idle_timeout(
    upstream: FaultUpstream,
) -> None:
    seen: list[str | Completion] = []
    async with _member(upstream.fault_url(Fault.STALL), idle_timeout_s=0.4) as member:
        with pytest.raises(MemberTimeout, match=r"no chunk within 0\.4s \(idle_timeout_s\)$"):
            await _drain(member, seen)
    assert seen == ["echo: "]  # what the upstream sent, and nothing invented after it


@pytest.mark.parametrize(
    ("fault", "message"),
    [(Fault.TRUNCATED, "stream ended without \\[DONE\\]"), (Fault.MALFORMED, "garbled stream")],
)
async def test_a_broken_stream_fails_after_what_was_sent_and_is_not_retried(
    upstream: FaultUpstream, fault: Fault, message: str
) -> None:
    seen: list[str | Completion] = []
    async with _member(upstream.fault_url(fault, 7), retries=3) as member:
        with pytest.raises(MemberError, match=message) as caught:
            await _drain(member, seen)
    assert caught.value.status == 502
    assert seen and all(isinstance(e, str) for e in seen)  # no Completion was made up
    assert "".join(str(e) for e in seen) != echo_answer(QUESTION)
    assert upstream.hits(fault, 7) == 1


@pytest.mark.parametrize(("fault", "retried"), [(Fault.TRUNCATED, True), (Fault.MALFORMED, False)])
async def test_a_held_stream_that_breaks_fails_before_its_first_byte(
    upstream: FaultUpstream, fault: Fault, retried: bool
) -> None:
    """With ``hold_stream_s`` a stream that breaks within the hold has sent nothing on: a
    cut one is retried like any failure before the first byte, a garbled one is a 502
    before the first event (so a fallback member can still answer)."""
    url = upstream.fault_url(fault, 1, label="held")
    seen: list[str | Completion] = []
    async with _member(url, retries=1, hold_stream_s=2.0) as member:
        if retried:
            await _drain(member, seen)
        else:
            with pytest.raises(MemberError, match="garbled stream") as caught:
                await _drain(member, seen)
            assert caught.value.status == 502
    if retried:
        assert "".join(e for e in seen if isinstance(e, str)) == echo_answer(QUESTION)
        assert upstream.hits(fault, 1, "held") == 2
    else:
        assert seen == []  # nothing of the broken stream reached the caller
        assert upstream.hits(fault, 1, "held") == 1


async def test_a_held_stream_that_stalls_is_relayed_and_then_hits_the_idle_timeout(
    upstream: FaultUpstream,
) -> None:
    url = upstream.fault_url(Fault.STALL, label="held-stall")
    seen: list[str | Completion] = []
    async with _member(url, hold_stream_s=0.2, idle_timeout_s=0.4) as member:
        with pytest.raises(MemberTimeout, match=r"no chunk within 0\.4s \(idle_timeout_s\)$"):
            await _drain(member, seen)
    assert seen == ["echo: "]  # held for 0.2 s, then relayed: what the upstream sent


async def test_a_plain_json_answer_to_a_stream_request_is_streamed_whole(
    upstream: FaultUpstream,
) -> None:
    async with _member(upstream.fault_url(Fault.JSON_ON_STREAM)) as member:
        events = [e async for e in _stream(member)]
    assert events[:-1] == [echo_answer(QUESTION)]
    assert isinstance(events[-1], Completion) and events[-1].text == echo_answer(QUESTION)


@pytest.mark.parametrize("stream", [False, True])
async def test_oversized_answers_are_cut_at_the_limit(
    upstream: FaultUpstream, stream: bool
) -> None:
    url = upstream.fault_url(Fault.OVERSIZED)
    async with _member(url, max_response_bytes=256 * 1024) as member:
        with pytest.raises(MemberError, match="over the 262144-byte limit") as caught:
            await _ask(member, stream)
    assert caught.value.status == 502


async def test_breaker_opens_refuses_without_calling_then_closes_after_a_good_probe(
    upstream: FaultUpstream,
) -> None:
    breaker = {"failures": 2, "window_s": 60, "cooldown_s": 0.3}
    url = upstream.fault_url(Fault.SERVER_ERROR, 2, label="breaker")
    async with _member(url, retries=0, breaker=breaker) as member:
        for _ in range(2):
            with pytest.raises(MemberError, match="HTTP 500"):
                await member.complete(Request.from_text(QUESTION))
        assert (await member.upstream.breaker.current())[0] is BreakerState.OPEN
        with pytest.raises(MemberUnavailable) as refused:
            await member.complete(Request.from_text(QUESTION))
        assert refused.value.status == 503 and refused.value.retry_after_s is not None
        assert upstream.hits(Fault.SERVER_ERROR, 2, "breaker") == 2  # refused without a call
        await asyncio.sleep(0.35)
        assert (await member.upstream.breaker.current())[0] is BreakerState.HALF_OPEN
        completion = await member.complete(Request.from_text(QUESTION))  # the probe
        assert completion.text == echo_answer(QUESTION)
        assert (await member.upstream.breaker.current())[0] is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_reads_seconds_and_dates(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


async def test_a_refusal_that_is_the_callers_fault_is_neither_retried_nor_counted(
    upstream: FaultUpstream,
) -> None:
    breaker = {"failures": 2, "window_s": 60, "cooldown_s": 60}
    url = upstream.fault_url(Fault.BAD_REQUEST, label="not-counted")
    async with _member(url, retries=2, breaker=breaker) as member:
        for _ in range(3):
            with pytest.raises(MemberRejected) as caught:
                await member.complete(Request.from_text(QUESTION))
            assert (caught.value.status, caught.value.code) == (400, "context_length_exceeded")
        assert (await member.upstream.breaker.current())[0] is BreakerState.CLOSED
    assert upstream.hits(Fault.BAD_REQUEST, label="not-counted") == 3  # one each
