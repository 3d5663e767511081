"""A client that hangs up at any stage of a request: exactly one ledger row for every request
whose head arrived (none for one that never finished its head), a chain that verifies, and
a gateway that goes on serving. A client that left before its answer is booked 499 with the
usage produced (a plain answer's member call is cancelled and booked with the prompt's
tokens, counted; a stream's tokens counted so far), on SQLite and PostgreSQL. Raw sockets,
since the SDK cannot hang up on purpose."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import open_ledger
from pinfactory.ledger.chain import verify_ledger
from pinfactory.team import parse_team
from pinfactory.testing.faults import Fault, FaultPlan, FaultUpstream, fault_upstream
from tests.conftest import ledger_rows
from tests.ledger.conftest import location, pg_location  # noqa: F401  (fixtures)
from tests.pipeline.conftest import ledger_where, wait_for_rows
from tests.pipeline.conftest import rows as rows_at


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with fault_upstream(FaultPlan(slow_s=1.0, hold_s=1.0)) as server:
        yield server


@pytest.fixture
def served(tmp_path: Path, upstream: FaultUpstream) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path / "ledger.db"
    member = "{{name: {}, kind: openai_http, settings: {{base_url: '{}', model: m}}}}"
    text = (
        "name: hangups\n"
        "members:\n"
        f"  - {member.format('ok', upstream.url)}\n"
        f"  - {member.format('slow', upstream.fault_url(Fault.SLOW))}\n"
        f"  - {member.format('stall', upstream.fault_url(Fault.STALL))}\n"
        "routing: {kind: rules, fallback: ok}\n"
        "upstream: {retries: 0}\n"
        "gateway: {header_timeout_s: 0.5, body_timeout_s: 0.5}\n"
    )
    team = parse_team(text, "hangups.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        yield url, ledger


def request_bytes(model: str, stream: bool) -> tuple[bytes, bytes]:
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def read_until(sock: socket.socket, marker: bytes) -> None:
    seen = b""
    while marker not in seen:
        data = sock.recv(4096)
        assert data, f"closed before {marker!r}"
        seen += data


def mid_head(sock: socket.socket) -> None:
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-ty")


def mid_body(sock: socket.socket) -> None:
    head, body = request_bytes("ok", False)
    sock.sendall(head + body[: len(body) // 2])


def waiting_for_an_answer(sock: socket.socket) -> None:
    sock.sendall(b"".join(request_bytes("slow", False)))
    time.sleep(0.3)  # the member is being called


def waiting_for_the_first_token(sock: socket.socket) -> None:
    sock.sendall(b"".join(request_bytes("slow", True)))
    time.sleep(0.3)


def mid_stream(sock: socket.socket) -> None:
    sock.sendall(b"".join(request_bytes("stall", True)))
    read_until(sock, b"data: ")  # one token came; the upstream then goes quiet


def answered_but_unread(sock: socket.socket) -> None:
    sock.sendall(b"".join(request_bytes("ok", False)))


def answered_then_reset(sock: socket.socket) -> None:
    sock.sendall(b"".join(request_bytes("ok", True)))
    read_until(sock, b"data: ")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


STAGES: list[tuple[Callable[[socket.socket], None], int]] = [
    (mid_head, 0),  # no request yet: nothing to record
    (mid_body, 1),
    (waiting_for_an_answer, 1),
    (waiting_for_the_first_token, 1),
    (mid_stream, 1),
    (answered_but_unread, 1),
    (answered_then_reset, 1),
]


LEFT_EARLY = (mid_body, waiting_for_an_answer, waiting_for_the_first_token, mid_stream)


@pytest.mark.parametrize(("hang_up", "rows"), STAGES, ids=[s.__name__ for s, _ in STAGES])
def test_a_client_hanging_up_leaves_exactly_one_row(
    served: tuple[str, Path], hang_up: Callable[[socket.socket], None], rows: int
) -> None:
    url, ledger = served
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        hang_up(sock)
    deadline = time.monotonic() + 5.0  # the member may still be finishing
    while len(ledger_rows(ledger)) < rows and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.2)  # long enough for a second row to appear, if one would
    found = ledger_rows(ledger)
    assert len(found) == rows
    if hang_up in LEFT_EARLY:  # it left before its answer was whole: booked 499
        assert found[0]["status"] == 499
    reply = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "ok", "messages": [{"role": "user", "content": "still there?"}]},
        timeout=10,
    )
    assert reply.status_code == 200
    assert len(ledger_rows(ledger)) == rows + 1

    async def intact() -> bool:
        ledger_db = open_ledger(str(ledger))
        await ledger_db.open()
        try:
            return (await verify_ledger(ledger_db)).intact
        finally:
            await ledger_db.close()

    assert asyncio.run(intact())


PRICED = (
    "{{name: {}, kind: openai_http, price: {{input_per_mtok: 1000, output_per_mtok: 2000}}, "
    "settings: {{base_url: '{}', model: m}}}}"
)


HUNG = (
    "{{name: hung, kind: openai_http, timeout_s: 0.8, "
    "price: {{input_per_mtok: 1000, output_per_mtok: 2000}}, "
    "settings: {{base_url: '{}', model: m}}}}"
)


@pytest.fixture
def priced(upstream: FaultUpstream, location: str) -> Iterator[str]:  # noqa: F811
    text = (
        "name: priced-hangups\n"
        "members:\n"
        f"  - {PRICED.format('slow', upstream.fault_url(Fault.SLOW, label='priced'))}\n"
        f"  - {HUNG.format(upstream.fault_url(Fault.SLOW, label='hung'))}\n"
        "routing: {kind: rules, fallback: slow}\n"
        "upstream: {retries: 0}\n"
        f"ledger: {{{ledger_where(location)}}}\n"
    )
    with serve_in_thread(create_app(parse_team(text, "priced.yaml", {}))) as url:
        yield url


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_client_that_leaves_before_its_answer_is_booked_499_with_the_usage(
    priced: str,
    location: str,  # noqa: F811
    stream: bool,
) -> None:
    host, port = priced.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"".join(request_bytes("slow", stream)))
        time.sleep(0.3)  # the upstream sleeps a second before it answers
    (row,) = wait_for_rows(location, 1)
    assert row["status"] == 499 and row["member"] == "slow"
    assert "client" in row["error"]
    if stream:  # closed on its first event: the prompt, and what that event carried
        assert row["input_tokens"] > 0
    else:  # the call was cancelled: the prompt's tokens, counted; nothing came back
        assert row["input_tokens"] > 0 and row["output_tokens"] == 0
        assert "cancelled" in row["error"]
    expected_nusd = (row["input_tokens"] * 1000 + row["output_tokens"] * 2000) * 1000  # n$
    assert row["cost_nusd"] == expected_nusd > 0
    time.sleep(0.5)
    assert len(rows_at(location)) == 1  # and nothing else


def test_a_client_that_leaves_while_its_member_hangs_is_booked_499_not_the_timeout(
    priced: str,
    location: str,  # noqa: F811
) -> None:
    """The member would time out (0.8 s) before its upstream answers (1 s); its client
    left first (0.2 s): the request is the client's 499, its call cancelled then, not
    the member's 504 later, and the prompt it sent is paid."""
    host, port = priced.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"".join(request_bytes("hung", False)))
        time.sleep(0.2)
    (row,) = wait_for_rows(location, 1)
    assert row["status"] == 499 and row["member"] == "hung"
    assert "client hung up" in row["error"] and "timeout" not in row["error"]
    assert row["output_tokens"] == 0
    assert row["cost_nusd"] == row["input_tokens"] * 1000 * 1000
