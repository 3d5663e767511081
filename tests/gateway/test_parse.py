"""The common-shape parser reads a body exactly as the pydantic model does."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pinfactory.errors import RequestError
from pinfactory.gateway.schema import parse_request
from pinfactory.request import Request

BODIES = [
    {"model": "auto", "messages": [{"role": "user", "content": "hello"}]},
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
    {
        "model": "auto",
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 1.5,
        "stop": ".",
    },
]


@pytest.mark.parametrize("body", BODIES)
def test_common_shape_and_full_model_give_the_same_request(body: dict[str, object]) -> None:
    def parse(data: dict[str, object]) -> tuple[Request, bool]:
        return parse_request(
            json.dumps(data).encode(), unit="u", user="", headers={}, request_id="req_1"
        )

    # another OpenAI field sends the body through the full checks; it is kept, unchanged
    common, usage = parse(body)
    full, full_usage = parse({**body, "seed": 3})
    assert full.params == {**common.params, "seed": 3}
    assert replace(full, params=common.params) == common and full_usage == usage


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"model": "auto", "messages": [{"role": "user", "content": "x"}], "temperature": True},
            "'temperature'",
        ),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            "at least 1",
        ),
        ({"model": "auto", "messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        (
            {"model": "auto", "messages": [{"role": "user", "content": "x"}], "stop": [1]},
            "'stop.0'",
        ),
        ({"model": "auto", "messages": [{"role": "user", "content": ""}]}, "message with content"),
    ],
)
def test_bad_common_bodies_get_the_models_messages(body: dict[str, object], fragment: str) -> None:
    with pytest.raises(Exception, match=fragment) as caught:
        parse_request(json.dumps(body).encode(), unit="u", user="", headers={}, request_id="r")
    assert type(caught.value).__name__ == "RequestError"


def documents_of(body: dict[str, object]) -> tuple[tuple[str, str], ...]:
    request, _ = parse_request(
        json.dumps(body).encode(), unit="u", user="", headers={}, request_id="req_1"
    )
    return tuple((d.text, d.title) for d in request.documents)


def test_documents_are_read_when_sent_and_checked_even_as_null() -> None:
    base: dict[str, object] = {"model": "auto", "messages": [{"role": "user", "content": "q"}]}
    assert documents_of(base) == ()
    assert documents_of({**base, "documents": []}) == ()
    sent = [{"text": "the sky is blue", "title": "sky"}, {"text": "grass is green"}]
    assert documents_of({**base, "documents": sent}) == (
        ("the sky is blue", "sky"),
        ("grass is green", ""),
    )
    for bad in (None, [{"title": "no text"}], [{"text": ""}]):
        with pytest.raises(RequestError) as refused:
            documents_of({**base, "documents": bad})
        assert (refused.value.param or "").startswith("documents")
