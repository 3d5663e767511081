"""Serving the gateway: in the foreground, or on a thread for the demo and tests.

With several workers, uvicorn starts each worker process from an import
string; the worker loads the team file named in ``PINFACTORY_TEAM_FILE``
(empty: the packaged default team), which the parent validated first. The
parent also gives the workers a fresh folder for shared Prometheus metrics
(``PROMETHEUS_MULTIPROC_DIR``) and removes it when they have stopped, and one
console session secret (``PINFACTORY_CONSOLE_SECRET``, when the operator set
none) so a cookie one worker signed is good on every other.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.supervisors import Multiprocess

from pinfactory.errors import PinfactoryError
from pinfactory.gateway import create_app
from pinfactory.gateway.departure import HANGUP, Hangup
from pinfactory.observe.access_log import log_to_stderr
from pinfactory.observe.metrics import MULTIPROC_DIR_ENV
from pinfactory.team import load_team

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from pinfactory.team import GatewaySpec, Team

TEAM_FILE_ENV = "PINFACTORY_TEAM_FILE"
HEADER_TIMEOUT_ENV = "PINFACTORY_HEADER_TIMEOUT_S"
CONSOLE_SECRET_ENV = "PINFACTORY_CONSOLE_SECRET"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; every other address (0.0.0.0 too) is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def open_exposure(team: Team, host: str, *, allow_open: bool) -> str | None:
    """Refuse to serve a keyless team beyond loopback unless ``allow_open``.

    A team with no keys answers anyone, admin API included. Raises :class:`RequestError`
    without ``allow_open``; with it, returns the warning to print. None when safe.
    """

    if team.spec.keys or is_loopback(host):
        return None
    problem = (
        f"team '{team.name}' has no API keys, so on {host} anyone who can reach the port "
        "can use it and its /admin API"
    )
    if not allow_open:
        raise PinfactoryError(
            f"{problem}; add keys to the team file, bind 127.0.0.1, or pass --allow-open"
        )
    return problem


def config(
    app: Any, host: str, port: int, *, limits: GatewaySpec | None = None, **options: Any
) -> uvicorn.Config:
    """uvicorn's settings for the gateway; ``limits`` sets the slow-client timeouts."""
    if limits is None:
        gateway = getattr(getattr(app, "state", None), "gateway", None)
        limits = gateway.team.spec.gateway if gateway is not None else None
    header_timeout_s = limits.header_timeout_s if limits is not None else 10.0
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=options.pop("log_level", "warning"),
        access_log=False,  # pinfactory writes its own JSON access log (observe/access_log.py)
        proxy_headers=False,  # nothing reads the client address; saves work per request
        loop="uvloop",
        http=guarded_http(header_timeout_s),
        timeout_keep_alive=int(limits.keep_alive_s) if limits is not None else 5,
        # a worker loads its models and warms its router before it is ready (uvicorn's
        # default, 5 s, restarts a worker that is still loading on a busy machine)
        timeout_worker_healthcheck=120,
        **options,
    )


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections that send no whole request head,
    sending each response's head with its body, and telling a request its client left.

    - uvicorn times out idle keep-alive connections but not a client that connects and
      never finishes its headers (or trickles them): each such connection would be held
      forever. The timer runs from the connection's start until the head is complete;
      between requests uvicorn's keep-alive timer waits for the next one, and ours runs
      again only if a read leaves a head unfinished (a head that comes whole, the usual
      case, arms no timer of ours).
    - A response leaves with its head in the body's first send (:class:`HeldHead`), not
      after a send of its own (one syscall and one segment fewer per response; a stream
      whose first frame is not ready in the same turn of the loop gets its head at once).
    - Each request's scope carries a :class:`~pinfactory.gateway.departure.Hangup`
      (``scope["extensions"]["pinfactory.hangup"]``), set when the connection is lost
      before its response is complete, so the gateway needs no task per request to
      notice a client that left.

    Worker processes import this class by name and read the timeout from
    ``PINFACTORY_HEADER_TIMEOUT_S``, which the parent sets.
    """

    header_timeout_s = float(os.environ.get(HEADER_TIMEOUT_ENV) or 10.0)
    _head_timer: asyncio.TimerHandle | None = None
    _hangup: Hangup | None = None
    _awaiting_head = True  # between requests: the next head is not complete yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_head and self._head_timer is None and not self.transport.is_closing():
            self._arm()  # a head begun in this read and not finished

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._disarm()
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before:  # a new request (not an upgrade)
            self._hangup = Hangup()
            self.scope["extensions"] = {HANGUP: self._hangup}  # type: ignore[dict-item]
            cycle.transport = HeldHead(self.transport, cycle, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._hangup is not None:
            self._hangup.body_complete = True

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms uvicorn's keep-alive timer, or starts the
        cycle = self.cycle  # next pipelined request
        self._awaiting_head = cycle is None or cycle.response_complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        cycle, hangup = self.cycle, self._hangup
        super().connection_lost(exc)
        if hangup is not None and cycle is not None and not cycle.response_complete:
            hangup.hung_up()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class HeldHead:
    """One request's view of its connection's transport (uvicorn's response cycle writes
    through it): the response head is held and leaves with the body's first write, in one
    ``write``. A head that announces a body of known length waits for it (it always
    follows); any other (a stream's, an empty or ``HEAD`` answer's) waits at most to the
    end of the event loop's current turn, so a stream's head that its first frames follow
    at once goes with them, and one whose first frame is slow goes out alone, as before.
    ``100 Continue`` is written at once.
    """

    __slots__ = ("_cycle", "_head", "_loop", "_transport", "_waiting")
    JOIN_LIMIT = 64 * 1024  # a larger body goes with its head in a vectored write

    def __init__(
        self,
        transport: asyncio.Transport,
        cycle: RequestResponseCycle,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._transport = transport
        self._cycle = cycle
        self._loop = loop
        self._head: bytes | None = None
        self._waiting = True  # for the response head

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) < self.JOIN_LIMIT:
                self._transport.write(head + bytes(data))
            else:
                self._transport.writelines((head, data))
            return
        cycle = self._cycle
        if self._waiting and cycle.response_started:  # this is the head (set just before)
            self._waiting = False
            self._head = bytes(data)
            if not (
                cycle.chunked_encoding is False
                and cycle.expected_content_length > 0
                and cycle.scope["method"] != "HEAD"
            ):
                self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def close(self) -> None:
        """Close the connection, after a held head (a response whose body never came)."""
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def _flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_http(header_timeout_s: float) -> type[GuardedHttpTools]:
    """:class:`GuardedHttpTools` with ``header_timeout_s`` (in this process)."""
    if header_timeout_s == GuardedHttpTools.header_timeout_s:
        return GuardedHttpTools
    return type("GuardedHttpTools", (GuardedHttpTools,), {"header_timeout_s": header_timeout_s})


def app_from_environment() -> Starlette:
    """The app factory each worker process calls."""

    log_to_stderr()
    return create_app(load_team(os.environ.get(TEAM_FILE_ENV) or None), served=True)


def serve_forever(
    team: Team, team_path: Path | None, host: str, port: int, *, workers: int = 1
) -> None:
    """Serve in the foreground until interrupted; ``workers`` > 1 forks processes."""

    log_to_stderr()
    if workers == 1:
        app = create_app(team, served=True)
        uvicorn.Server(config(app, host, port, log_level="info", limits=team.spec.gateway)).run()
        return

    os.environ[TEAM_FILE_ENV] = str(team_path.resolve()) if team_path else ""
    os.environ[HEADER_TIMEOUT_ENV] = repr(team.spec.gateway.header_timeout_s)
    target = f"{__name__}:app_from_environment"
    cfg = config(
        target,
        host,
        port,
        limits=team.spec.gateway,
        log_level="info",
        factory=True,
        workers=workers,
    )
    previous = {name: os.environ.get(name) for name in (MULTIPROC_DIR_ENV, CONSOLE_SECRET_ENV)}
    metrics_dir = tempfile.mkdtemp(prefix="pinfactory-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = metrics_dir  # spawned workers inherit it
    if not os.environ.get(CONSOLE_SECRET_ENV):  # one secret for every worker's cookies
        os.environ[CONSOLE_SECRET_ENV] = secrets.token_urlsafe(32)
    try:
        Multiprocess(cfg, sockets=[cfg.bind_socket()]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Run ``app`` under uvicorn on a thread; yield its base URL; stop it on exit."""
    port = port or free_port(host)
    server = uvicorn.Server(config(app, host, port))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if failure or not thread.is_alive():
            raise RuntimeError(f"gateway failed to start on {host}:{port}: {failure[:1]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"gateway did not start on {host}:{port} within 120 s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
