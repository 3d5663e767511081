"""The common-shape parser reads a body exactly as the pydantic model does."""

from __future__ import annotations

import json

import pytest

from pinfactory.gateway.schema import parse_request

BODIES = [
    {"messages": [{"role": "user", "content": "hello"}]},
    {
        "model": "local",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "what is 2+2?"},
        ],
        "temperature": 0,
        "max_tokens": 12,
        "max_completion_tokens": 7,
        "stop": ["\n", "END"],
        "stream": True,
        "user": "bob",
    },
    {"messages": [{"role": "user", "content": "x"}], "temperature": 1.5, "stop": "."},
]


@pytest.mark.parametrize("body", BODIES)
def test_common_shape_and_full_model_give_the_same_request(body: dict[str, object]) -> None:
    def parse(data: dict[str, object]) -> object:
        request, usage = parse_request(
            json.dumps(data).encode(), unit="u", user="", headers={}, request_id="req_1"
        )
        return request, usage

    # an unknown OpenAI field sends the body through the pydantic model
    assert parse(body) == parse({**body, "seed": 3})


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "temperature": True}, "'temperature'"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "greater than 0"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "'stop'"),
        ({"messages": [{"role": "system", "content": "x"}]}, "non-empty user message"),
    ],
)
def test_bad_common_bodies_get_the_models_messages(body: dict[str, object], fragment: str) -> None:
    with pytest.raises(Exception, match=fragment) as caught:
        parse_request(json.dumps(body).encode(), unit="u", user="", headers={}, request_id="r")
    assert type(caught.value).__name__ == "RequestError"
