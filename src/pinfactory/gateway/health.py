"""``/health/live`` and ``/health/ready``, and the start-up work that must finish before ready.

- live: the process answers HTTP (nothing else is checked: a failing dependency must
  not get a healthy process restarted);
- ready: the team's members are open, the router has warmed up (encoders built, models
  loaded: :func:`warm_up` runs at start-up on a worker thread, never on a request's event
  loop), the ledger answers, and the shared state (Redis) answers when configured.
  503 with the failing check named otherwise, so a load balancer sends traffic elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinfactory.errors import PinfactoryError
from pinfactory.request import Request

if TYPE_CHECKING:
    from pinfactory.gateway.app import Gateway
    from pinfactory.pipeline import Pipeline

CHECK_TIMEOUT_S = 2.0


async def warm_up(pipeline: Pipeline) -> float:
    """Route one throwaway request on a worker thread so that whatever the router loads
    lazily (encoders, example embeddings, caches on disk) is loaded before the first
    real request. Returns the seconds it took."""
    started = time.perf_counter()
    await asyncio.to_thread(pipeline.router.decide, Request.from_text("warm-up", unit="-"))
    return time.perf_counter() - started


class Health:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def live(self, _: HTTPRequest) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(self, _: HTTPRequest) -> Response:
        checks: dict[str, Any] = {}
        pipeline = self.gateway.pipeline
        checks["members"] = "ok" if pipeline is not None else "starting"
        if pipeline is not None:
            checks["ledger"] = await _check(pipeline.ledger.head())
        if self.gateway.state_url:
            checks["state"] = await _check(self.gateway.state.ping())
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)


async def _check(probe: Any) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except PinfactoryError as exc:
        return exc.message
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def health_routes(gateway: Gateway) -> list[Route]:
    health = Health(gateway)
    return [
        Route("/health/live", health.live, methods=["GET"]),
        Route("/health/ready", health.ready, methods=["GET"]),
    ]
