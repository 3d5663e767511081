"""What an answer leaves for after its response (``pinfactory.deferred``): observers hear
of it once the body is sent, its rate-limit slot comes back, a failure there is logged and
undoes nothing. The gateway is driven over ASGI so the order of its sends is seen."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive

from pinfactory.deferred import Deferred
from pinfactory.gateway import create_app
from pinfactory.observe import Observers, Timeline
from pinfactory.outcome import Answer, Failure
from tests.observe.conftest import observed_team

ONE_AT_A_TIME = "rate_limits: [{per: key, concurrent: 1}]\n"


class Recorder:
    """An observer writing what it hears into the same log as the ASGI sends."""

    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log, self.fail = log, fail

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def answered(self, answer: Answer, timeline: Timeline) -> None:
        self.log.append(f"answered {answer.request.request_id} stages={len(timeline.stages)}")
        if self.fail:
            raise RuntimeError("observer broke")

    def failed(self, failure: Failure, timeline: Timeline) -> None:  # noqa: ARG002
        self.log.append(f"failed {failure.error.status}")


@asynccontextmanager
async def started(app: Any) -> AsyncIterator[None]:
    """The app's lifespan, run as a server would."""
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    up, down = asyncio.Event(), asyncio.Event()

    async def send(message: dict[str, str]) -> None:
        if message["type"] == "lifespan.startup.complete":
            up.set()
        elif message["type"] == "lifespan.shutdown.complete":
            down.set()

    await messages.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app({"type": "lifespan", "state": {}}, messages.get, send))
    await asyncio.wait_for(up.wait(), 60)
    try:
        yield
    finally:
        await messages.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(down.wait(), 60)
        await task


def post_once(path: str, body: bytes) -> tuple[dict[str, Any], Receive]:
    """An ASGI scope for ``POST path`` and a ``receive`` that hands over ``body`` whole,
    then waits as a client that never leaves does."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "http_version": "1.1",
        "scheme": "http",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": {},
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client never leaves
        raise AssertionError("unreachable")

    return scope, receive


async def ask(app: Any, log: list[str], path: str = "/v1/chat/completions") -> dict[str, Any]:
    """POST one question; each send is logged as it happens; the JSON answer."""
    question: dict[str, Any] = {"model": "upstream"}
    if path == "/v1/completions":
        question["prompt"] = "hi"
    else:
        question["messages"] = [{"role": "user", "content": "hi"}]
    scope, receive = post_once(path, json.dumps(question).encode())
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        log.append(message["type"])
        chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return json.loads(b"".join(chunks))  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_observers_hear_of_an_answer_after_its_body_is_sent(
    tmp_path: Path, upstream_url: str, path: str
) -> None:
    log: list[str] = []
    team = observed_team(tmp_path, upstream_url, extra=ONE_AT_A_TIME)
    app = create_app(team, observers=Observers([Recorder(log)]))
    async with started(app):
        first = await ask(app, log, path)
        second = await ask(app, log, path)  # the one slot came back with the first answer
    assert [a["choices"][0].get("text", "ok") for a in (first, second)] == ["ok", "ok"]
    ids = [first["pinfactory"]["request_id"], second["pinfactory"]["request_id"]]
    expected = []
    for request_id in ids:  # the route, call and record stages were timed
        expected += ["http.response.start", "http.response.body", f"answered {request_id} stages=3"]
    assert log == expected


async def test_an_observer_that_fails_after_the_response_is_logged_and_undoes_nothing(
    tmp_path: Path, upstream_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    team = observed_team(tmp_path, upstream_url, extra=ONE_AT_A_TIME)
    app = create_app(team, observers=Observers([Recorder(log, fail=True)]))
    with caplog.at_level(logging.ERROR, logger="pinfactory.deferred"):
        async with started(app):
            answers = [await ask(app, log), await ask(app, log)]  # the slot still came back
    assert [a["choices"][0]["message"]["content"] for a in answers] == ["ok", "ok"]
    failures = [r for r in caplog.records if "work after a response failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT request_id, status FROM requests ORDER BY seq").fetchall()
    assert rows == [(a["pinfactory"]["request_id"], 200) for a in answers]


async def test_deferred_work_runs_in_order_once_and_past_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []

    async def later(name: str) -> None:
        await asyncio.sleep(0)
        done.append(name)

    def broken() -> None:
        raise ValueError("boom")

    deferred = Deferred()
    assert not deferred
    deferred.add(done.append, "first")
    deferred.add(broken)
    deferred.add(later, "second")
    assert deferred
    with caplog.at_level(logging.ERROR, logger="pinfactory.deferred"):
        await deferred.run()
        await deferred.run()  # nothing twice
    assert done == ["first", "second"]
    assert not deferred
    assert [r.getMessage() for r in caplog.records] == [
        "work after a response failed: test_deferred_work_runs_in_order_once_and_past_a_failure"
        ".<locals>.broken"
    ]
