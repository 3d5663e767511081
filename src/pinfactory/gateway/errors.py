"""The one place where pinfactory errors become OpenAI-shaped HTTP errors."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pinfactory.errors import MemberError, PinfactoryError
from pinfactory.gateway.schema import error_body

log = logging.getLogger("pinfactory.gateway")


def error_response(error: PinfactoryError, request_id: str = "") -> Response:
    headers = {"x-request-id": request_id} if request_id else {}
    if isinstance(error, MemberError):
        headers["x-pinfactory-member"] = error.member
    if error.status >= 500:
        log.warning("request %s failed: %s", request_id, error.message)
    body = error_body(error.message, type_=error.type, code=error.code, param=error.param)
    return Response(
        orjson.dumps(body), status_code=error.status, headers=headers, media_type="application/json"
    )


def unexpected(exc: BaseException, request_id: str) -> PinfactoryError:
    """An error nobody anticipated: logged with its traceback, answered without it."""
    log.exception("request %s: unexpected %s", request_id, type(exc).__name__, exc_info=exc)
    return PinfactoryError(f"internal error ({type(exc).__name__}); request id {request_id}")


async def http_error(http: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such route) and 405 (wrong method), OpenAI-shaped."""
    assert isinstance(exc, HTTPException)
    method, path = http.method, http.url.path
    if exc.status_code == 405:
        headers = exc.headers or {}
        allowed = sorted(
            m.strip() for m in (headers.get("allow") or headers.get("Allow", "")).split(",")
        )
        message = f"method {method} is not allowed on {path}; allowed: {', '.join(allowed)}"
        code = "method_not_allowed"
    elif exc.status_code == 404:
        message = f"no such endpoint: {method} {path}; see /openapi.json"
        code = "not_found"
    else:
        message, code = str(exc.detail), "http_error"
    body = error_body(message, type_="invalid_request_error", code=code, param=None)
    return Response(
        orjson.dumps(body),
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
        media_type="application/json",
    )
