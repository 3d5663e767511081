"""The floor of any gateway on pinfactory's server stack: a bare ASGI relay.

It does nothing but forward: read the request body, POST it to the upstream with the
HTTP client pinfactory's members use (one ``aiohttp.ClientSession``, keep-alive, as
``members/upstream.py`` opens it), and send the upstream's status and body back. No
auth, parsing, routing, ledger or metrics. Served by ``bench/gateway_overhead.py
--floor`` under the same uvicorn settings as ``pinfactory serve`` (uvloop, httptools,
no access log), so the latency it adds over the upstream is what this machine charges
for the stack itself: two loopback hops, uvicorn's HTTP parsing and ASGI dispatch, and
the client's request. Nothing built on this stack can add less.

    python -m uvicorn --app-dir bench --factory relay_floor:create_app --loop uvloop \\
        --http httptools --no-access-log   # with RELAY_UPSTREAM=http://127.0.0.1:PORT
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The relay for ``RELAY_UPSTREAM`` (the upstream's origin, e.g. http://127.0.0.1:8001)."""
    upstream = os.environ["RELAY_UPSTREAM"].rstrip("/")
    session: aiohttp.ClientSession | None = None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    session = aiohttp.ClientSession(  # as members/upstream.py opens it
                        headers={"content-type": "application/json"},
                        connector=aiohttp.TCPConnector(
                            limit=100, limit_per_host=100, keepalive_timeout=30
                        ),
                        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                        skip_auto_headers=("user-agent",),
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if session is not None:
                        await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert session is not None
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        async with session.post(upstream + scope["path"], data=b"".join(chunks)) as reply:
            body = await reply.read()
            status = reply.status
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
