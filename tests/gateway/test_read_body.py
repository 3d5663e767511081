"""Reading a request body the server already holds whole (``Hangup.body_complete``): one
message as a rule, but parts, an oversized body and a client that left are still handled."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request as HTTPRequest

from pinfactory.errors import ClientClosedRequest, PayloadTooLarge
from pinfactory.gateway.app import read_body
from pinfactory.gateway.departure import Hangup


def held(*messages: dict[str, Any]) -> tuple[HTTPRequest, Hangup]:
    """A request whose ``receive`` gives ``messages`` in order, its body marked whole."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    hangup = Hangup()
    hangup.body_complete = True
    return HTTPRequest({"type": "http", "headers": []}, receive), hangup


async def test_a_body_in_one_message_is_read_at_once() -> None:
    http, hangup = held({"type": "http.request", "body": b'{"a": 1}', "more_body": False})
    assert await read_body(http, 100, "8", hangup=hangup) == b'{"a": 1}'


async def test_a_body_in_parts_is_joined() -> None:
    http, hangup = held(
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b" 1}", "more_body": False},
    )
    assert await read_body(http, 100, None, hangup=hangup) == b'{"a": 1}'


@pytest.mark.parametrize("more", [False, True])
async def test_a_body_past_the_limit_is_refused(more: bool) -> None:
    first = {"type": "http.request", "body": b"x" * 8, "more_body": more}
    http, hangup = held(first, {"type": "http.request", "body": b"x" * 8, "more_body": False})
    with pytest.raises(PayloadTooLarge, match="exceeds the limit of 5 bytes"):
        await read_body(http, 5, None, hangup=hangup)


async def test_a_client_that_left_is_told_apart() -> None:
    http, hangup = held({"type": "http.disconnect"})
    with pytest.raises(ClientClosedRequest, match="after 0 bytes"):
        await read_body(http, 100, None, hangup=hangup)
