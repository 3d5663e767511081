"""Capabilities: requests reach only members that can serve them, or a 400 says who lacks what.

A real gateway on loopback with a recording upstream behind an ``openai_http`` member
(which can do everything), the calculator (which can do none of it) and a second remote
member declared without vision in the team file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinfactory.capabilities import capability_names, needs, tool_names
from pinfactory.errors import TeamFileError
from pinfactory.gateway import create_app
from pinfactory.gateway.schema import parse_request
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import parse_team
from pinfactory.testing.recording import RecordingUpstream
from tests.conftest import ledger_rows

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is 2 + 2 in this picture?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/sum.png"}},
        ],
    }
]
SUM = [{"role": "user", "content": "What is 2 + 2?"}]


def team_file(url: str, extra: str = "") -> str:
    return f"""\
name: capable
members:
  - {{name: remote, kind: openai_http, tier: frontier,
      settings: {{base_url: "{url}/v1", model: upstream-model}}}}
  - {{name: blind, kind: openai_http, tier: small, capabilities: {{vision: false}},
      price: {{per_call: 0.5}},
      settings: {{base_url: "{url}/v1", model: blind-model}}}}
  - {{name: calculator, kind: calculator, tier: tool}}
routing:
  kind: rules
  fallback: blind
  rules:
    - {{name: weather, when: {{tools: [get_weather]}}, route: remote}}
    - {{name: structured, when: {{needs: [json_schema]}}, route: remote}}
    - {{name: arithmetic, when: {{regex: '\\d\\s*\\+\\s*\\d'}}, route: calculator}}
{extra}"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[RecordingUpstream, str]]:
    recorder = RecordingUpstream()
    with serve_in_thread(recorder.app()) as url:
        yield recorder, url


def serve(url: str, tmp: Path, extra: str = "") -> Any:
    team = parse_team(
        team_file(url, extra), "capable.yaml", {"PINFACTORY_LEDGER": str(tmp / "l.db")}
    )
    return serve_in_thread(create_app(team))


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("capable")
    with serve(upstream[1], tmp) as url:
        yield url, tmp / "l.db"


@pytest.fixture
def recorder(upstream: tuple[RecordingUpstream, str]) -> RecordingUpstream:
    upstream[0].reset()
    return upstream[0]


def ask(url: str, request_id: str, **body: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        content=json.dumps({"model": "auto", "messages": SUM, **body}),
        headers={"x-request-id": request_id, "content-type": "application/json"},
    )


def test_a_tool_request_the_rules_send_to_the_calculator_goes_to_a_tool_member(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    response = ask(gateway[0], "req_cap_moved", tools=[tool])
    assert response.status_code == 200, response.text
    meta = response.json()["pinfactory"]
    assert meta["member"] == "remote"  # no other tool member; the cheapest eligible one
    assert meta["reason"] == (
        "rule 'arithmetic' matched; 'calculator' lacks tools ('tools'), so the eligible 'remote'"
    )
    assert recorder.last["tools"] == [tool]
    [row] = ledger_rows(gateway[1], "correlation_id = 'req_cap_moved'")
    assert row["member"] == "remote" and "lacks tools" in row["reason"]


def test_rules_match_tool_names_and_requested_capabilities(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    by_tool = ask(gateway[0], "req_cap_tool_rule", tools=[WEATHER]).json()["pinfactory"]
    assert (by_tool["member"], by_tool["rule"]) == ("remote", "weather")
    schema = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    by_need = ask(gateway[0], "req_cap_need_rule", response_format=schema).json()["pinfactory"]
    assert (by_need["member"], by_need["rule"]) == ("remote", "structured")
    assert [b["model"] for b in recorder.bodies] == ["upstream-model", "upstream-model"]


def test_an_image_goes_only_to_a_vision_member(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    response = ask(gateway[0], "req_cap_image", messages=IMAGE)
    assert response.json()["pinfactory"]["member"] == "remote"
    assert recorder.last["messages"] == IMAGE


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            {"model": "calculator", "tools": [WEATHER]},
            "tools",
            "'tools' needs tool calling, which member 'calculator' does not support; "
            "members that support it: remote, blind",
        ),
        (
            {"model": "blind", "messages": IMAGE},
            "messages.0.content.1",
            "'messages.0.content.1' needs image input (vision), which member 'blind' does not "
            "support; members that support it: remote",
        ),
        (
            {"model": "calculator", "n": 2},
            "n",
            "'n' needs several choices, which member 'calculator' does not support; "
            "members that support it: remote, blind",
        ),
        (
            {"model": "calculator", "logprobs": True},
            "logprobs",
            "'logprobs' needs log probabilities, which member 'calculator' does not support; "
            "members that support it: remote, blind",
        ),
        (
            {"model": "calculator", "response_format": {"type": "json_object"}},
            "response_format",
            "'response_format' needs JSON mode, which member 'calculator' does not support; "
            "members that support it: remote, blind",
        ),
    ],
)
def test_a_pinned_member_that_lacks_a_capability_is_a_400_naming_both(
    gateway: tuple[str, Path],
    recorder: RecordingUpstream,
    body: dict[str, Any],
    param: str,
    message: str,
) -> None:
    response = ask(gateway[0], f"req_cap_{param}", **body)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": "invalid_request",
    }
    assert recorder.bodies == []
    [row] = ledger_rows(gateway[1], f"correlation_id = 'req_cap_{param}'")
    assert row["status"] == 400


def test_drop_unsupported_removes_the_parameter_and_records_it(
    upstream: tuple[RecordingUpstream, str], recorder: RecordingUpstream, tmp_path: Path
) -> None:
    with serve(upstream[1], tmp_path, "drop_unsupported: [tools, images]\n") as url:
        pinned = ask(url, "req_cap_dropped", model="calculator", tools=[WEATHER])
        blind = ask(url, "req_cap_dropped_image", model="blind", messages=IMAGE)
    assert pinned.status_code == 200
    meta = pinned.json()["pinfactory"]
    assert meta["member"] == "calculator"
    assert pinned.json()["choices"][0]["message"]["content"] == "2 + 2 = 4"
    assert meta["reason"].endswith("; dropped unsupported: tools (calculator lacks tools)")
    [row] = ledger_rows(tmp_path / "l.db", "correlation_id = 'req_cap_dropped'")
    assert "dropped unsupported: tools" in row["reason"]
    assert blind.status_code == 200
    assert recorder.last["messages"] == [{**IMAGE[0], "content": [IMAGE[0]["content"][0]]}]


def test_no_eligible_member_is_a_400_listing_who_lacks_it(
    upstream: tuple[RecordingUpstream, str], tmp_path: Path
) -> None:
    text = team_file(upstream[1]).replace(
        "tier: frontier,", "tier: frontier, capabilities: {vision: false},"
    )
    team = parse_team(text, "blind.yaml", {"PINFACTORY_LEDGER": str(tmp_path / "l.db")})
    with serve_in_thread(create_app(team)) as url:
        response = ask(url, "req_cap_nobody", messages=IMAGE)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "'messages.0.content.1' needs image input (vision); no member can serve this request "
        "(lacking it: remote, blind, calculator)"
    )


def test_a_bad_capability_override_names_the_line(upstream: tuple[RecordingUpstream, str]) -> None:
    text = team_file(upstream[1]).replace("{vision: false}", "{vision: maybe}")
    with pytest.raises(TeamFileError, match=r"capable.yaml:5: members.1.capabilities.vision"):
        parse_team(text, "capable.yaml", {})


def test_needs_read_the_request() -> None:
    body = {
        "model": "auto",
        "messages": IMAGE,
        "tools": [WEATHER],
        "n": 2,
        "logprobs": True,
        "stream": True,
        "response_format": {"type": "json_object"},
    }
    request, _ = parse_request(
        json.dumps(body).encode(), unit="u", user="", headers={}, request_id="r"
    )
    assert capability_names(request) == {
        "tools",
        "vision",
        "n",
        "logprobs",
        "streaming",
        "json_mode",
    }
    assert tool_names(request) == {"get_weather"}
    assert [n.param for n in needs(request) if n.capability == "vision"] == ["messages.0.content.1"]
