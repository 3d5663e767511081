"""A stream's observers hear of its answer after its last frame, as a plain answer's hear
of it after its body (``pinfactory.deferred``): the row is recorded before the closing
frames (they carry its figures), the observers are told once they have left, and the
rate-limit slot comes back. Driven over ASGI so the order of the sends is seen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pinfactory.gateway import create_app
from pinfactory.observe import Observers
from tests.observe.conftest import observed_team
from tests.observe.test_after_response import ONE_AT_A_TIME, Recorder, post_once, started


async def ask_streamed(app: Any, log: list[str]) -> list[dict[str, Any]]:
    """POST one streamed question; each send logged as it happens; the chunks read."""
    body = json.dumps(
        {"model": "upstream", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    scope, receive = post_once("/v1/chat/completions", body)
    said: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        more = message.get("more_body")
        log.append(message["type"] + (" (last)" if more is False else ""))
        said.append(message.get("body", b""))

    await app(scope, receive, send)
    frames = b"".join(said).decode().split("\n\n")
    assert frames[-2] == "data: [DONE]"
    return [json.loads(frame.removeprefix("data: ")) for frame in frames[:-2]]


async def test_a_streams_observers_hear_of_it_after_its_last_frame(
    tmp_path: Path, upstream_url: str
) -> None:
    log: list[str] = []
    team = observed_team(tmp_path, upstream_url, extra=ONE_AT_A_TIME)
    app = create_app(team, observers=Observers([Recorder(log)]))
    async with started(app):
        first = await ask_streamed(app, log)
        second = await ask_streamed(app, log)  # the one slot came back after the first
    ids = []
    for chunks in (first, second):
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "ok"
        ids.append(chunks[-1]["pinfactory"]["request_id"])  # the row's figures, recorded
    answered = [line for line in log if line.startswith("answered")]
    assert answered == [f"answered {request_id} stages=3" for request_id in ids]  # once each
    assert log[0] == "http.response.start"  # nobody was told before the first stream began
    for request_id in ids:
        at = log.index(f"answered {request_id} stages=3")
        assert log[at - 1] == "http.response.body (last)"  # told once its stream was over
    assert log[-1] == answered[-1]
