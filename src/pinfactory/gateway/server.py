"""Serving the gateway: in the foreground, or on a thread for the demo and tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=options.pop("log_level", "warning"),
        access_log=False,
        loop="uvloop",
        http="httptools",
        **options,
    )


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
