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

from pinfactory.errors import MemberError, PinfactoryError, RequestError, unexpected
from pinfactory.gateway.schema import error_body
from pinfactory.request import correlation_id, new_request_id

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


class RouteError(PinfactoryError):
    """Starlette's own 404 (no such route) or 405 (wrong method), as a pinfactory error."""

    type = "invalid_request_error"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def request_ids(http: Request) -> dict[str, str]:
    """The id headers of a response made outside the request pipeline (``GET
    /v1/models``, a 404): a fresh ``x-request-id``, and the client's own ``X-Request-Id``
    back as ``x-correlation-id`` (when it is one that could be kept), as every pipeline
    response has them."""
    headers = {"x-request-id": new_request_id()}
    try:
        given = correlation_id(http.headers.get("x-request-id"))
    except RequestError:
        given = None
    if given is not None:
        headers["x-correlation-id"] = given
    return headers


def raised_error(
    http: Request, error: PinfactoryError, shape: ErrorShape = openai_error
) -> Response:
    """A pinfactory error raised outside the pipeline, with :func:`request_ids`."""
    ids = request_ids(http)
    return error_response(error, ids["x-request-id"], ids.get("x-correlation-id"), shape)


def http_error(http: Request, exc: Exception, shape: ErrorShape = openai_error) -> Response:
    """Starlette's own 404 (no such route) and 405 (wrong method), in ``shape`` (OpenAI's;
    Anthropic's under ``/v1/messages``), with :func:`request_ids` and ``Allow``."""
    assert isinstance(exc, HTTPException)
    method, path = http.method, http.url.path
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = sorted(
            m.strip() for m in (headers.get("allow") or headers.get("Allow", "")).split(",")
        )
        message = f"method {method} is not allowed on {path}; allowed: {', '.join(allowed)}"
        error = RouteError(405, "method_not_allowed", message)
    elif exc.status_code == 404:
        error = RouteError(
            404, "not_found", f"no such endpoint: {method} {path}; see /openapi.json"
        )
    else:
        error = RouteError(exc.status_code, "http_error", str(exc.detail))
    response = raised_error(http, error, shape)
    response.headers.update(headers)
    return response


__all__ = [
    "ErrorShape",
    "RouteError",
    "error_response",
    "http_error",
    "openai_error",
    "raised_error",
    "request_ids",
    "unexpected",
]
