"""Slow and careless clients: no connection is held forever, every request gets a row."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinfactory.errors import PinfactoryError
from pinfactory.gateway import create_app
from pinfactory.gateway.server import is_loopback, open_exposure, serve_in_thread
from pinfactory.team import parse_team
from tests.conftest import ledger_rows

TEAM = (
    "members: [{name: calculator, kind: calculator}]\n"
    "routing: {kind: rules, fallback: calculator}\n"
    "gateway: {header_timeout_s: 0.5, body_timeout_s: 0.5}\n"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path / "ledger.db"
    team = parse_team(TEAM, "slow.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        yield url, ledger


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("sent", [b"", b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"])
def test_a_connection_that_never_finishes_its_head_is_closed(
    served: tuple[str, Path], sent: bytes
) -> None:
    with _connect(served[0]) as sock:
        sock.sendall(sent)
        assert _closed_within(sock, 5.0)


def test_a_second_head_left_unfinished_on_a_kept_connection_is_closed(
    served: tuple[str, Path],
) -> None:
    body = b'{"model": "calculator", "messages": [{"role": "user", "content": "2+2"}]}'
    with _connect(served[0]) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = b""
        while b'"chat.completion"' not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")  # and no more
        assert _closed_within(sock, 5.0)


def test_a_body_that_stops_half_way_is_a_408_and_a_row(served: tuple[str, Path]) -> None:
    url, ledger = served
    with _connect(url) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"messages": '
        )
        sock.settimeout(5)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request body not received within 0.5s" in answer
    assert [r["status"] for r in ledger_rows(ledger)] == [408]


def test_a_client_that_hangs_up_mid_body_still_gets_a_row(served: tuple[str, Path]) -> None:
    url, ledger = served
    with _connect(url) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            b'content-length: 100\r\n\r\n{"messages": '
        )
    deadline = time.monotonic() + 5
    while not ledger_rows(ledger) and time.monotonic() < deadline:
        time.sleep(0.05)
    (row,) = ledger_rows(ledger)
    assert row["status"] == 499
    assert "hung up" in row["error"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.9", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_keyless_team_is_not_served_beyond_loopback_unless_allowed() -> None:
    keyless = parse_team(TEAM, "open.yaml", {"PINFACTORY_LEDGER": ":memory:"})
    assert open_exposure(keyless, "127.0.0.1", allow_open=False) is None
    with pytest.raises(PinfactoryError, match="--allow-open"):
        open_exposure(keyless, "0.0.0.0", allow_open=False)
    warning = open_exposure(keyless, "0.0.0.0", allow_open=True)
    assert warning is not None and "/admin" in warning
    keyed = parse_team(TEAM + "keys: [{key: sk-unit-12345, unit: default}]\n", "keyed.yaml", {})
    assert open_exposure(keyed, "0.0.0.0", allow_open=False) is None
