"""Tools that passed every check are not checked again, and nothing else is skipped.

Clients send the same tool list request after request; its checks (openai's types,
names, JSON Schemas) are most of what a tool body costs to parse. A list that passed
is remembered by its JSON, so the next body with it checks only the rest: a bad value
elsewhere, a ``tool_choice`` naming a tool the list lacks, or a list that failed
before are refused exactly as the first time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pinfactory.errors import RequestError
from pinfactory.gateway import schema
from pinfactory.gateway.schema import parse_request

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _parse(**fields: Any) -> Any:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields}
    request, _ = parse_request(
        json.dumps(body).encode(), unit="u", user="", headers={}, request_id="req_1"
    )
    return request


def _known(tools: list[dict[str, Any]]) -> bool:
    return json.dumps(tools, separators=(",", ":")).encode() in schema._KNOWN_TOOLS


def test_a_tool_list_that_passed_is_remembered_and_read_the_same() -> None:
    tools = [{**WEATHER, "function": {**WEATHER["function"], "description": "remembered"}}]
    first = _parse(tools=tools, tool_choice="auto")
    assert _known(tools)
    second = _parse(tools=tools, tool_choice="auto")
    assert second.params == first.params and second.tools == first.tools


def test_the_rest_of_a_body_with_known_tools_is_still_checked() -> None:
    _parse(tools=[WEATHER])
    assert _known([WEATHER])
    with pytest.raises(RequestError, match="'temperature' must be between 0 and 2"):
        _parse(tools=[WEATHER], temperature=5)
    choice = {"type": "function", "function": {"name": "order_status"}}
    with pytest.raises(RequestError, match="'tool_choice' names tool 'order_status'"):
        _parse(tools=[WEATHER], tool_choice=choice)
    body = {"model": "auto", "messages": [{"role": "user", "content": 3}], "tools": [WEATHER]}
    with pytest.raises(RequestError, match=r"'messages\.0\.content'"):
        parse_request(json.dumps(body).encode(), unit="u", user="", headers={}, request_id="r")


def test_a_tool_list_that_failed_is_refused_every_time() -> None:
    bad = [{"type": "function", "function": {"name": "bad name", "parameters": {}}}]
    for _ in range(2):
        with pytest.raises(RequestError, match=r"'tools\.0\.function\.name'"):
            _parse(tools=bad)
    assert not _known(bad)
    broken_schema = [{**WEATHER, "function": {"name": "w", "parameters": {"type": 7}}}]
    for _ in range(2):
        with pytest.raises(RequestError, match="not a valid JSON Schema"):
            _parse(tools=broken_schema)
    assert not _known(broken_schema)
