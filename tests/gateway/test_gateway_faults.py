"""The gateway in front of an upstream that fails on purpose, seen through the OpenAI SDK.

What a client meets: an upstream 429 stays a 429 with its Retry-After, a stream that
breaks ends with an error event (never a made-up ending) and a 502 row, a budget
refusal tells the SDK not to retry, and every request is one ledger row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import parse_team
from pinfactory.testing.faults import (
    CLIENT_ERRORS,
    Fault,
    FaultPlan,
    FaultUpstream,
    drip_answer,
    echo_answer,
    fault_upstream,
)
from tests.conftest import ledger_rows

HI = [{"role": "user", "content": "say something true"}]
PLAN = FaultPlan(retry_after_s=7, hold_s=3.0, drip_s=0.2)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with fault_upstream(PLAN) as server:
        yield server


@pytest.fixture
def gateway(
    tmp_path: Path, upstream: FaultUpstream, request: pytest.FixtureRequest
) -> Iterator[tuple[str, Path]]:
    """``request.param``: (the fault, or None; team file lines to add; optionally fields
    to add to the member, and to its settings, e.g. ``", timeout_s: 1"``)."""
    fault, extra, member, settings = (*request.param, "", "")[:4]
    ledger = tmp_path / "ledger.db"
    base_url = upstream.url if fault is None else upstream.fault_url(fault)
    text = (
        "name: faulty\n"
        f"members: [{{name: remote, kind: openai_http, settings: {{base_url: '{base_url}', "
        f"model: m{settings}}}, price: {{per_call: 0.01}}{member}}}]\n"
        "routing: {kind: rules, fallback: remote}\n"
        "upstream: {retries: 0, max_retry_after_s: 1, first_token_timeout_s: 0.5}\n" + extra
    )
    team = parse_team(text, "faulty.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        yield url, ledger


def _client(url: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=retries)


def _read_stream(client: openai.OpenAI, seen: list[str]) -> None:
    stream = client.chat.completions.create(model="auto", messages=HI, stream=True)  # type: ignore[arg-type]
    for chunk in stream:
        if chunk.choices:
            assert chunk.choices[0].finish_reason is None  # nothing invented
            seen.append(chunk.choices[0].delta.content or "")


@pytest.mark.parametrize("gateway", [(Fault.RATE_LIMITED, "")], indirect=True)
def test_upstream_429_reaches_the_client_as_429_with_retry_after(
    gateway: tuple[str, Path],
) -> None:
    url, ledger = gateway
    with _client(url) as client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
    headers = caught.value.response.headers
    assert headers["retry-after"] == "7"
    assert headers["x-should-retry"] == "true"
    assert headers["x-pinfactory-member"] == "remote"
    assert [r["status"] for r in ledger_rows(ledger)] == [429]


@pytest.mark.parametrize("gateway", [(Fault.TRUNCATED, "")], indirect=True)
def test_a_stream_cut_upstream_ends_with_an_error_event_and_a_502_row(
    gateway: tuple[str, Path],
) -> None:
    url, ledger = gateway
    seen: list[str] = []
    with _client(url) as client, pytest.raises(openai.APIError, match=r"without \[DONE\]"):
        _read_stream(client, seen)
    assert "".join(seen) and "".join(seen) != echo_answer(HI[0]["content"])
    (row,) = ledger_rows(ledger)
    assert row["status"] == 502
    assert "without [DONE]" in row["error"]


@pytest.mark.parametrize("gateway", [(Fault.KEEPALIVE, "")], indirect=True)
def test_keepalives_only_time_out_as_504_before_the_stream_starts(
    gateway: tuple[str, Path],
) -> None:
    url, ledger = gateway
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post(
            "/v1/chat/completions", json={"model": "auto", "messages": HI, "stream": True}
        )
    assert response.status_code == 504
    said = "member 'remote': no token within 0.5s (first_token_timeout_s)"
    assert response.json()["error"]["message"] == said
    assert [r["status"] for r in ledger_rows(ledger)] == [504]


@pytest.mark.parametrize("gateway", [(Fault.DRIP, "", ", timeout_s: 1")], indirect=True)
def test_a_stream_that_keeps_sending_outlives_the_members_timeout(
    gateway: tuple[str, Path],
) -> None:
    """``timeout_s`` bounds the wait for each chunk, not a stream that keeps sending: a
    chunk every 0.2 s for 3 s gets through whole past a 1 s ``timeout_s``."""
    url, ledger = gateway
    with _client(url) as client:
        stream = client.chat.completions.create(model="auto", messages=HI, stream=True)  # type: ignore[arg-type]
        chunks = [chunk.choices[0] for chunk in stream if chunk.choices]
    assert "".join(choice.delta.content or "" for choice in chunks) == drip_answer(PLAN)
    assert chunks[-1].finish_reason == "stop"
    assert [r["status"] for r in ledger_rows(ledger)] == [200]


@pytest.mark.parametrize(
    "gateway", [(Fault.DRIP, "", "", ", upstream: {total_timeout_s: 1}")], indirect=True
)
def test_a_total_timeout_cuts_a_stream_and_names_itself(gateway: tuple[str, Path]) -> None:
    url, ledger = gateway
    seen: list[str] = []
    with _client(url) as client, pytest.raises(openai.APIError) as caught:
        _read_stream(client, seen)
    said = "member 'remote': stream still sending at 1s (total_timeout_s)"
    assert caught.value.message == said
    assert caught.value.code == "member_timeout"
    assert seen and drip_answer(PLAN).startswith("".join(seen))
    (row,) = ledger_rows(ledger)
    assert row["status"] == 504
    assert said in row["error"]


CALLER_FAULTS = [
    (Fault.BAD_REQUEST, openai.BadRequestError),
    (Fault.TOO_LARGE, openai.APIStatusError),
    (Fault.UNPROCESSABLE, openai.UnprocessableEntityError),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("gateway", "fault", "error"),
    [((f, "", "", ", upstream: {retries: 2}"), f, error) for f, error in CALLER_FAULTS],
    indirect=["gateway"],
)
def test_an_upstream_refusal_that_is_the_callers_fault_reaches_it_as_such(
    gateway: tuple[str, Path],
    upstream: FaultUpstream,
    fault: Fault,
    error: type[openai.APIStatusError],
    stream: bool,
) -> None:
    """The upstream's 400/413/422 reaches the client with its status and its error's type,
    code and param, the member named; not retried (by the gateway or, told so, by the SDK),
    not counted by the breaker, one row with that status. A stream refused before its
    first chunk is the same."""
    url, ledger = gateway
    said = CLIENT_ERRORS[fault]
    hits = upstream.hits(fault)
    with _client(url, retries=2) as client, pytest.raises(error) as caught:
        client.chat.completions.create(model="auto", messages=HI, stream=stream)  # type: ignore[call-overload]
    refused = caught.value
    assert refused.status_code == int(fault)
    assert refused.body == {
        "message": f"member 'remote': upstream refused the request (HTTP {fault}): "
        + said["message"],
        "type": said["type"],
        "param": said["param"],
        "code": said["code"],
    }
    assert refused.response.headers["x-should-retry"] == "false"
    assert refused.response.headers["x-pinfactory-member"] == "remote"
    assert upstream.hits(fault) == hits + 1  # asked once: no retry
    assert [r["status"] for r in ledger_rows(ledger)] == [int(fault)]


@pytest.mark.parametrize(
    ("gateway", "cause"),
    [
        ((Fault.UNAUTHORIZED, ""), "the gateway's credentials"),
        ((Fault.FORBIDDEN, ""), "the gateway's credentials"),
        ((Fault.NOT_FOUND, ""), "no such model or endpoint"),
    ],
    indirect=["gateway"],
)
def test_an_upstream_refusal_that_is_the_gateways_fault_is_a_502_saying_why(
    gateway: tuple[str, Path], cause: str
) -> None:
    """401/403 (the gateway's key for the upstream) and 404 (the member's model or URL, set
    in the team file) are not the caller's doing: a 502 naming the member, the upstream's
    status, code and message, and not to be retried."""
    url, ledger = gateway
    with _client(url, retries=2) as client, pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
    message = caught.value.body["message"]  # type: ignore[index]
    assert message.startswith("member 'remote': ") and cause in message
    fault = next(f for f in CLIENT_ERRORS if f"HTTP {f}" in message)
    assert CLIENT_ERRORS[fault]["message"] in message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert [r["status"] for r in ledger_rows(ledger)] == [502]


@pytest.mark.parametrize(
    "gateway", [(None, "rate_limits: [{per: user, name: limited, tpm: 1}]\n")], indirect=True
)
def test_a_user_limit_counts_the_user_the_ledger_records(gateway: tuple[str, Path]) -> None:
    """On a team without keys the body's ``user`` is the request's user: the ledger
    records it and ``per: user`` limits count it (a one-token ``tpm`` refuses any request
    of that user at once, whatever the minute)."""
    url, ledger = gateway
    with _client(url) as client:
        with pytest.raises(openai.RateLimitError, match="user 'limited''s limit of 1 token"):
            client.chat.completions.create(model="auto", messages=HI, user="limited")  # type: ignore[arg-type]
        client.chat.completions.create(model="auto", messages=HI, user="someone")  # type: ignore[arg-type]
    rows = ledger_rows(ledger)
    assert [(r["user"], r["status"]) for r in rows] == [("limited", 429), ("someone", 200)]


@pytest.mark.parametrize("gateway", [(None, "rate_limits: [{per: unit, rpm: 2}]\n")], indirect=True)
def test_rate_limited_requests_get_429_with_retry_after_and_are_recorded(
    gateway: tuple[str, Path],
) -> None:
    url, ledger = gateway
    with _client(url) as client:
        for _ in range(2):
            reply = client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
            assert reply.choices[0].message.content == echo_answer(HI[0]["content"])
        with pytest.raises(openai.RateLimitError, match="over 2 requests a minute") as caught:
            client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
    headers = caught.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-should-retry"] == "true"
    assert [r["status"] for r in ledger_rows(ledger)] == [200, 200, 429]


@pytest.mark.parametrize(
    "gateway",
    [(None, "budgets: [{unit: default, period: day, max_spend_usd: 0}]\n")],
    indirect=True,
)
def test_a_budget_refusal_tells_the_sdk_not_to_retry(gateway: tuple[str, Path]) -> None:
    url, ledger = gateway
    with _client(url, retries=2) as client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(ledger_rows(ledger)) == 1  # the SDK asked once, not three times


def test_health_and_one_json_access_line_per_request(
    tmp_path: Path, upstream: FaultUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    team = parse_team(
        "members: [{name: remote, kind: openai_http, settings: "
        f"{{base_url: '{upstream.url}', model: m}}}}]\n"
        "routing: {kind: rules, fallback: remote}\n",
        "logged.yaml",
        {"PINFACTORY_LEDGER": str(tmp_path / "ledger.db")},
    )
    with (
        caplog.at_level(logging.INFO, logger="pinfactory.access"),
        serve_in_thread(create_app(team)) as url,
        httpx.Client(base_url=url) as client,
    ):
        assert client.get("/health/live").json() == {"status": "live"}
        ready = client.get("/health/ready")
        reply = client.post(
            "/v1/chat/completions",
            json={"model": "auto", "messages": HI},
            headers={"x-request-id": "req_log1"},
        )
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"members": "ok", "ledger": "ok"}
    assert reply.status_code == 200
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pinfactory.access"]
    assert len(lines) == 1
    line = lines[0]
    assert (line["request_id"], line["unit"], line["member"], line["status"]) == (
        reply.headers["x-request-id"],
        "default",
        "remote",
        200,
    )
    assert line["latency_ms"] > 0
