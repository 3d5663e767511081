"""Serving the gateway: in the foreground, or on a thread for the demo and tests.

With several workers, uvicorn starts each worker process from an import
string; the worker loads the team file named in ``PINFACTORY_TEAM_FILE``
(empty: the packaged default team), which the parent validated first. The
parent also gives the workers a fresh folder for shared Prometheus metrics
(``PROMETHEUS_MULTIPROC_DIR``) and removes it when they have stopped.
"""

from __future__ import annotations

import os
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
from uvicorn.supervisors import Multiprocess

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from pinfactory.team import Team

TEAM_FILE_ENV = "PINFACTORY_TEAM_FILE"


def config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=options.pop("log_level", "warning"),
        access_log=False,
        proxy_headers=False,  # nothing reads the client address; saves work per request
        loop="uvloop",
        http="httptools",
        **options,
    )


def app_from_environment() -> Starlette:
    """The app factory each worker process calls."""
    from pinfactory.gateway import create_app
    from pinfactory.team import load_team

    return create_app(load_team(os.environ.get(TEAM_FILE_ENV) or None))


def serve_forever(
    team: Team, team_path: Path | None, host: str, port: int, *, workers: int = 1
) -> None:
    """Serve in the foreground until interrupted; ``workers`` > 1 forks processes."""
    if workers == 1:
        from pinfactory.gateway import create_app

        uvicorn.Server(config(create_app(team), host, port, log_level="info")).run()
        return
    from pinfactory.observe.metrics import MULTIPROC_DIR_ENV

    os.environ[TEAM_FILE_ENV] = str(team_path.resolve()) if team_path else ""
    target = f"{__name__}:app_from_environment"
    cfg = config(target, host, port, log_level="info", factory=True, workers=workers)
    previous = os.environ.get(MULTIPROC_DIR_ENV)
    metrics_dir = tempfile.mkdtemp(prefix="pinfactory-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = metrics_dir  # spawned workers inherit it
    try:
        Multiprocess(cfg, sockets=[cfg.bind_socket()]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if previous is None:
            os.environ.pop(MULTIPROC_DIR_ENV, None)
        else:
            os.environ[MULTIPROC_DIR_ENV] = previous


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
