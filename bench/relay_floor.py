"""The floor of any gateway on pinfactory's server stack: a bare ASGI relay.

It does nothing but forward: read the request body, POST it to the upstream with the
HTTP client pinfactory's members POST whole answers with (``members/http1.py``, one pool
of keep-alive connections, as ``members/upstream.py`` opens it), and send the upstream's
status and body back. No auth, parsing, routing, ledger or metrics. Served under the
same uvicorn settings as ``pinfactory serve`` (``gateway/server.py``'s ``config``: uvloop,
httptools with pinfactory's protocol, no access log), so the latency it adds over the
upstream is what this machine charges for the stack itself: two loopback hops, uvicorn's
HTTP parsing and ASGI dispatch, and the client's request. Nothing built on this stack
can add less.

    RELAY_UPSTREAM=http://127.0.0.1:PORT python bench/relay_floor.py --port 8010
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from pinfactory.gateway.server import config
from pinfactory.members.http1 import Http1Pool

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
CAP = 8 * 1024 * 1024  # members' default max_response_bytes


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The relay for ``RELAY_UPSTREAM`` (the upstream's origin, e.g. http://127.0.0.1:8001)."""
    upstream = os.environ["RELAY_UPSTREAM"].rstrip("/")
    pools: dict[str, Http1Pool] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    for pool in pools.values():
                        await pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        pool = pools.get(scope["path"])
        if pool is None:  # as members/upstream.py opens it: one pool per URL
            pool = pools[scope["path"]] = Http1Pool(upstream + scope["path"], max_connections=100)
        reply = await pool.post(b"".join(chunks), CAP, 30.0)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(reply.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.Server(config(create_app(), args.host, args.port)).run()


if __name__ == "__main__":
    main()
