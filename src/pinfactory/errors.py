"""The one exception tree of pinfactory.

Every error a caller can cause or meet derives from :class:`PinfactoryError`.
The gateway maps them to OpenAI-shaped error objects in one place
(``gateway/errors.py``); nothing else catches broadly.
"""

from __future__ import annotations

import logging

log = logging.getLogger("pinfactory")


class PinfactoryError(Exception):
    """Base of every pinfactory error.

    ``status`` is the HTTP status the gateway answers with, ``code`` the
    OpenAI-style error code, ``param`` the request field at fault if any.
    """

    status: int = 500
    code: str = "internal_error"
    type: str = "server_error"
    retry_after_s: float | None = None
    """Sent as ``Retry-After`` (whole seconds, rounded up): when a retry may succeed."""
    should_retry: bool | None = None
    """Sent as ``x-should-retry``: whether retrying can help at all (the OpenAI SDKs obey it)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def unexpected(exc: BaseException, request_id: str) -> PinfactoryError:
    """An error nobody anticipated: logged with its traceback, answered (500) without it."""
    log.error("request %s: unexpected %s", request_id, type(exc).__name__, exc_info=exc)
    return PinfactoryError(f"internal error ({type(exc).__name__}); request id {request_id}")


class TeamFileError(PinfactoryError):
    """A team file that cannot be loaded: names the file, line and field."""

    code = "team_file_invalid"


class RequestError(PinfactoryError):
    """The caller's request is malformed or asks for something not allowed."""

    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class ContextLengthExceeded(RequestError):
    """The prompt does not fit the context window of the member that would answer it."""

    code = "context_length_exceeded"


class PayloadTooLarge(RequestError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(RequestError):
    """A request body in an encoding the gateway does not read (``Content-Encoding``)."""

    status = 415
    code = "unsupported_media_type"


class RequestTimeout(RequestError):
    """The client did not send its request (headers or body) in time."""

    status = 408
    code = "request_timeout"


class ClientClosedRequest(RequestError):
    """The client hung up before its request was whole; recorded as status 499."""

    status = 499
    code = "client_closed_request"


class UnknownModel(RequestError):
    status = 404
    code = "model_not_found"


class AuthError(PinfactoryError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"


class ForbiddenError(PinfactoryError):
    status = 403
    code = "forbidden"
    type = "permission_error"


class QuotaExceeded(PinfactoryError):
    """A unit's budget or quota does not allow the request."""

    status = 429
    code = "quota_exceeded"
    type = "rate_limit_error"
    should_retry = False  # a spent budget does not come back by asking again


class RateLimited(PinfactoryError):
    """Too many requests, tokens or concurrent requests for a key, user or unit."""

    status = 429
    code = "rate_limited"
    type = "rate_limit_error"
    should_retry = True

    def __init__(self, message: str, *, retry_after_s: float, should_retry: bool = True) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.should_retry = should_retry


class MemberError(PinfactoryError):
    """A member failed to answer: upstream refused, broke or sent garbage."""

    status = 502
    code = "member_failed"
    type = "upstream_error"

    def __init__(
        self,
        member: str,
        message: str,
        *,
        status: int = 502,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"member '{member}': {message}")
        self.member = member
        self.status = status
        self.retry_after_s = retry_after_s


class MemberRejected(MemberError):
    """The member's upstream refused the request as the caller's fault (HTTP 400, 413,
    422: a prompt too long for the model, a bad parameter value): answered with the
    upstream's status, its error's ``type``, ``code`` and ``param``, and its message after
    the member's name. Retrying the same request cannot help (``x-should-retry: false``),
    and the member is not at fault (no breaker count, no fallback except for
    ``context_length_exceeded``, which a member with a longer context may answer)."""

    should_retry = False

    def __init__(
        self,
        member: str,
        message: str,
        *,
        status: int,
        type_: str,
        code: str,
        param: str | None,
    ) -> None:
        super().__init__(member, message, status=status)
        self.type = type_
        self.code = code
        self.param = param


class MemberTimeout(MemberError):
    code = "member_timeout"

    def __init__(self, member: str, message: str) -> None:
        super().__init__(member, message, status=504)


class ClientGone(MemberError):
    """The client went away mid-stream; recorded as status 499."""

    code = "client_closed_request"

    def __init__(self, member: str, message: str) -> None:
        super().__init__(member, message, status=499)


class RoutingError(PinfactoryError):
    """A router could not be built or loaded (bad config, missing file)."""

    code = "routing_failed"


class DatasetError(PinfactoryError):
    """Lab data that cannot be loaded: names the file, the row and the field at fault."""

    code = "dataset_invalid"


class LedgerError(PinfactoryError):
    """The ledger cannot record or read: the request is not acknowledged."""

    code = "ledger_failed"


class NotFound(PinfactoryError):
    status = 404
    code = "not_found"
    type = "invalid_request_error"


class Conflict(PinfactoryError):
    status = 409
    code = "conflict"
    type = "invalid_request_error"
