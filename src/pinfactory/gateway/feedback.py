"""``POST /v1/feedback``: a caller scores an answer it was given.

Body: ``{"request_id": "req_...", "score": 0.8}`` or ``{"request_id": ..., "thumbs":
"up" | "down"}``, with an optional ``"comment"`` (at most 4,000 characters). The request
id is the ``x-request-id`` header (or ``pinfactory.request_id``) of the answer; its
``chatcmpl-...`` completion id is taken too. A request of another unit is answered 404,
like one that does not exist; bad input is a 400 naming the field. Every refusal is
recorded in the ledger (``model`` ``feedback``) like any refused request.

The feedback is stored in the ledger's ``feedback`` table and sealed in the audit
chain in one commit (``pinfactory.feedback``), where the online router learns from it
(``routing/online.py``); this worker's router folds it in before the response.
Answer (200): ``{"object": "pinfactory.feedback", "id", "request_id", "score",
"thumbs", "comment", "created"}``.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinfactory.errors import NotFound, PinfactoryError, RequestError
from pinfactory.feedback import feedback_event
from pinfactory.gateway.auth import Caller
from pinfactory.gateway.errors import error_response
from pinfactory.gateway.schema import field_error
from pinfactory.ledger.base import Feedback
from pinfactory.request import MAX_CORRELATION_ID, new_request_id
from pinfactory.routing.online import Learner

if TYPE_CHECKING:
    from pinfactory.gateway.app import Gateway

MAX_BODY = 16_384
MAX_COMMENT = 4_000


class FeedbackBody(BaseModel):
    """The JSON body of ``POST /v1/feedback``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(min_length=1, max_length=MAX_CORRELATION_ID)
    score: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    thumbs: Literal["up", "down"] | None = None
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


def parse_feedback(raw: bytes) -> FeedbackBody:
    """The body, or a :class:`RequestError` (400) naming the field at fault."""
    if len(raw) > MAX_BODY:
        raise RequestError(f"request body exceeds {MAX_BODY} bytes")
    try:
        data = orjson.loads(raw or b"null")
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestError(
            "request body must be a JSON object: {request_id, score | thumbs, comment?}"
        )
    try:
        body = FeedbackBody.model_validate(data)
    except ValidationError as exc:
        raise field_error(exc, data) from exc
    if (body.score is None) == (body.thumbs is None):
        raise RequestError(
            "give exactly one of 'score' (a number in [0, 1]) and 'thumbs' ('up' or 'down')",
            param="score",
        )
    if body.comment is not None and "\x00" in body.comment:
        raise RequestError("'comment' contains a NUL byte (\\u0000)", param="comment")
    return body


def request_id_of(given: str) -> str:
    """The request id a client gave: ``req_...``, or the answer's ``chatcmpl-...`` id."""
    if given.startswith("chatcmpl-"):
        return "req_" + given.removeprefix("chatcmpl-")
    return given


class FeedbackEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def handle(self, http: HTTPRequest) -> Response:
        started = time.perf_counter()
        pipeline = self.gateway.ready
        caller: Caller | None = None
        try:
            caller = self.gateway.keyring.identify(http.headers.get("authorization"))
            body = parse_feedback(await http.body())
            feedback = await self.store(caller, body)
        except PinfactoryError as exc:
            request_id = new_request_id()
            await pipeline.record_failure(
                None, exc, started, request_id=request_id, model="feedback",
                unit=caller.unit if caller else "-", user=caller.user if caller else "",
            )  # fmt: skip
            return error_response(exc, request_id)
        return JSONResponse(
            {
                "object": "pinfactory.feedback",
                "id": feedback.id,
                "request_id": feedback.request_id,
                "score": feedback.score,
                "thumbs": feedback.thumbs,
                "comment": feedback.comment,
                "created": int(feedback.time),
            }
        )

    async def store(self, caller: Caller, body: FeedbackBody) -> Feedback:
        """Check the request is the caller's unit's, then store and seal the feedback."""
        pipeline = self.gateway.ready
        request_id = request_id_of(body.request_id)
        entry = await pipeline.ledger.entry(request_id)
        if entry is None or (not self.gateway.keyring.open and entry.unit != caller.unit):
            raise NotFound(f"no request '{body.request_id}'", param="request_id")
        score = body.score if body.score is not None else float(body.thumbs == "up")
        feedback = Feedback(
            id="fb_" + uuid.uuid4().hex[:24],
            request_id=request_id,
            unit=entry.unit,
            user=caller.user,
            score=score,
            thumbs=body.thumbs,
            comment=body.comment,
        )
        await pipeline.ledger.add_feedback(feedback, [feedback_event(feedback)])
        if isinstance(pipeline.router, Learner):
            await pipeline.router.learn(pipeline.ledger)
        return feedback


def feedback_routes(gateway: Gateway) -> list[Route]:
    return [Route("/v1/feedback", FeedbackEndpoint(gateway).handle, methods=["POST"])]
