"""The one place where pinfactory errors become OpenAI-shaped HTTP errors."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pinfactory.errors import MemberError, PinfactoryError, unexpected
from pinfactory.gateway.schema import error_body

log = logging.getLogger("pinfactory.gateway")


ErrorShape = Callable[[PinfactoryError], dict[str, Any]]
"""An endpoint's error body for a failure (``/v1/messages`` answers in Anthropic's)."""


def openai_error(error: PinfactoryError) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, as OpenAI shapes an error."""
    return error_body(error.message, type_=error.type, code=error.code, param=error.param)


def error_response(
    error: PinfactoryError,
    request_id: str = "",
    correlation_id: str | None = None,
    shape: ErrorShape = openai_error,
) -> Response:
    """The error object (OpenAI's shape unless ``shape`` says otherwise) with its status;
    ``x-request-id`` is the server's id, a client's own id comes back as
    ``x-correlation-id``."""
    headers = {"x-request-id": request_id} if request_id else {}
    if correlation_id:
        headers["x-correlation-id"] = correlation_id
    if isinstance(error, MemberError):
        headers["x-pinfactory-member"] = error.member
    if error.retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after_s)))
    if error.should_retry is not None:
        headers["x-should-retry"] = "true" if error.should_retry else "false"
    if error.status >= 500:
        log.warning("request %s failed: %s", request_id, error.message)
    return Response(
        orjson.dumps(shape(error)),
        status_code=error.status,
        headers=headers,
        media_type="application/json",
    )


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


__all__ = ["ErrorShape", "error_response", "http_error", "openai_error", "unexpected"]
