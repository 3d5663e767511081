"""The openai_http member against real OpenAI-compatible servers on loopback.

The well-behaved upstream is a second pinfactory gateway; the faults come
from a real HTTP server that misbehaves on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pinfactory.errors import MemberError, MemberTimeout
from pinfactory.gateway import create_app
from pinfactory.gateway.server import free_port, serve_in_thread
from pinfactory.members import Completion
from pinfactory.members.base import Delta, Price, each
from pinfactory.members.openai_http import (
    OpenAIHTTPMember,
    OpenAIHTTPSettings,
    parse_completion,
    parse_usage,
    to_payload,
)
from pinfactory.request import Request
from pinfactory.team import parse_team
from pinfactory.testing.upstreams import misbehaving_upstream

UPSTREAM_TEAM = """\
name: upstream
members: [{name: calculator, kind: calculator}]
routing: {kind: rules, fallback: calculator}
"""


@pytest.fixture(scope="module")
def pinfactory_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ledger = tmp_path_factory.mktemp("upstream") / "ledger.db"
    team = parse_team(UPSTREAM_TEAM, "upstream.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        yield url + "/v1"


@pytest.fixture(scope="module")
def bad_upstream() -> Iterator[str]:
    with serve_in_thread(misbehaving_upstream(slow_s=5.0)) as url:
        yield url + "/v1"


def member(base_url: str, model: str, timeout_s: float = 10.0) -> OpenAIHTTPMember:
    settings = OpenAIHTTPSettings(base_url=base_url, model=model, api_key="sk-x")
    price = Price(
        input_per_mtok=1_000_000, output_per_mtok=2_000_000
    )  # $1 per input token: easy sums
    return OpenAIHTTPMember("remote", settings, price=price, timeout_s=timeout_s)


async def test_completes_against_another_pinfactory(pinfactory_upstream: str) -> None:
    remote = member(pinfactory_upstream, "auto")
    await remote.open()
    try:
        completion = await remote.complete(Request.from_text("What is 6 times 7?"))
    finally:
        await remote.close()
    assert "42" in completion.text
    assert completion.model == "calculator"
    assert completion.usage.input_tokens > 0
    assert completion.cost_usd == completion.usage.input_tokens + 2 * completion.usage.output_tokens


async def test_streams_against_another_pinfactory(pinfactory_upstream: str) -> None:
    remote = member(pinfactory_upstream, "calculator")
    await remote.open()
    try:
        events = [e async for run in remote.stream(Request.from_text("100 / 8")) for e in each(run)]
    finally:
        await remote.close()
    final = events[-1]
    assert isinstance(final, Completion)
    relayed = [e for e in events if isinstance(e, Delta)]
    assert relayed and len(relayed) == len(events) - 1  # every chunk relayed as it came
    assert "12.5" in "".join(e.text for e in relayed) == final.text
    assert relayed[-1].finish and relayed[-1].chunk.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("model", "error", "fragment", "status"),
    [
        ("garbage", MemberError, "garbage", 502),
        ("wrong-shape", MemberError, "not a chat completion", 502),
        ("error-500", MemberError, "HTTP 500", 502),
        ("error-429", MemberError, "HTTP 429", 429),  # passed on, with its Retry-After
        ("slow", MemberTimeout, "no answer within 0.5s", 504),
    ],
)
async def test_faults_become_member_errors(
    bad_upstream: str, model: str, error: type[MemberError], fragment: str, status: int
) -> None:
    # only the slow upstream is meant to time out; the others get time for their
    # retries (a 429 is retried first) on however busy a machine
    remote = member(bad_upstream, model, timeout_s=0.5 if model == "slow" else 10.0)
    await remote.open()
    try:
        with pytest.raises(error) as caught:
            await remote.complete(Request.from_text("hi"))
    finally:
        await remote.close()
    assert fragment in caught.value.message
    assert caught.value.member == "remote"
    assert caught.value.status == status


async def test_refused_connection_is_a_502() -> None:
    remote = member(f"http://127.0.0.1:{free_port()}/v1", "x")
    await remote.open()
    try:
        with pytest.raises(MemberError, match="cannot reach upstream") as caught:
            await remote.complete(Request.from_text("hi"))
    finally:
        await remote.close()
    assert caught.value.status == 502


async def test_a_stream_that_breaks_is_a_member_error(bad_upstream: str) -> None:
    remote = member(bad_upstream, "cut")
    await remote.open()
    try:
        with pytest.raises(MemberError, match="garbled stream"):
            async for _ in remote.stream(Request.from_text("one two three")):
                pass
    finally:
        await remote.close()


def test_translation_is_pure() -> None:
    request = Request.from_text("hi", temperature=0.2, max_tokens=9, stop=("END",))
    payload = to_payload(request, "m", stream=True, default_max_tokens=None)
    assert payload == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "max_tokens": 9,
        "stop": ["END"],
        "stream": True,
    }
    asked = to_payload(request, "m", stream=True, default_max_tokens=None, stream_usage=True)
    assert asked["stream_options"] == {"include_usage": True}
    answer = parse_completion(
        b'{"id": "c", "object": "chat.completion", "created": 0, "model": "m",'
        b' "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"},'
        b' "finish_reason": "length"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1,'
        b' "total_tokens": 4}}'
    )
    usage = parse_usage(answer.usage)
    first = answer.choices[0]
    assert (first.message.content, usage.input_tokens, usage.output_tokens, answer.model) == (
        "yo",
        3,
        1,
        "m",
    )
    assert first.finish_reason == "length"
    with pytest.raises(ValueError, match="not a chat completion"):
        parse_completion(b'["nope"]')


def test_gateway_answers_502_and_504_naming_the_member(bad_upstream: str, tmp_path: Path) -> None:
    import httpx

    team = parse_team(
        f"""\
name: faulty
members:
  - {{name: flaky, kind: openai_http, timeout_s: 0.5,
      settings: {{base_url: "{bad_upstream}", model: garbage}}}}
  - {{name: sleepy, kind: openai_http, timeout_s: 0.5,
      settings: {{base_url: "{bad_upstream}", model: slow}}}}
routing: {{kind: rules, fallback: flaky}}
""",
        "faulty.yaml",
        {"PINFACTORY_LEDGER": str(tmp_path / "l.db")},
    )
    with serve_in_thread(create_app(team)) as url:
        hi = [{"role": "user", "content": "hi"}]
        garbage = httpx.post(url + "/v1/chat/completions", json={"model": "auto", "messages": hi})
        slow = httpx.post(url + "/v1/chat/completions", json={"model": "sleepy", "messages": hi})
        slow_stream = httpx.post(
            url + "/v1/chat/completions", json={"model": "sleepy", "messages": hi, "stream": True}
        )
    assert garbage.status_code == 502
    assert "member 'flaky'" in garbage.json()["error"]["message"]
    assert garbage.headers["x-pinfactory-member"] == "flaky"
    assert slow.status_code == 504
    assert "member 'sleepy'" in slow.json()["error"]["message"]
    assert slow_stream.status_code == 504
