"""The admin API and each unit's view of its own data.

``/admin/*`` needs an admin key: spend by unit/user/member/tag, the review
queue (list, show, approve, override) and the audit chain (verify, explain).
A unit key reaches only ``/v1/costs`` and ``/v1/reviews/{id}`` for its own
unit; another unit's review is answered 404, as if it did not exist.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinfactory.errors import ForbiddenError, NotFound, RequestError
from pinfactory.gateway.auth import Caller, Keyring
from pinfactory.ledger.chain import verify_ledger
from pinfactory.ledger.reports import (
    check_format,
    check_grouping,
    parse_since,
    spend_csv,
    spend_json,
)
from pinfactory.ledger.responsibility import explain
from pinfactory.ledger.reviews import full, public
from pinfactory.pipeline import Pipeline


class Gateway(Protocol):
    """What the admin API needs of the gateway: its keys and its open pipeline."""

    keyring: Keyring

    @property
    def ready(self) -> Pipeline: ...


REVIEW_STATES = ("pending", "approved", "overridden", "all")
MAX_BODY = 65_536


class Admin:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def _caller(self, http: HTTPRequest) -> Caller:
        return self.gateway.keyring.identify(http.headers.get("authorization"))

    def _admin(self, http: HTTPRequest) -> Caller:
        caller = self._caller(http)
        if not caller.admin:
            raise ForbiddenError("this endpoint needs an admin key; unit keys reach /v1 only")
        return caller

    async def _unit(self, name: str | None) -> str | None:
        """The ``unit`` filter, refused if no key or request ever named that unit."""
        if not name:
            return None
        known = set(self.gateway.keyring.units) | set(await self.gateway.ready.ledger.units())
        if name not in known:
            raise NotFound(
                f"unknown unit '{name}'; known units: {', '.join(sorted(known)) or 'none'}",
                param="unit",
            )
        return name

    async def _spend(self, http: HTTPRequest, unit: str | None, default_by: str) -> Response:
        query = http.query_params
        by = check_grouping(query.get("by", default_by))
        fmt = check_format(query.get("format", "json"))
        since = parse_since(query.get("since"))
        rows = await self.gateway.ready.ledger.spend(by, since, unit)
        if fmt == "csv":
            return Response(spend_csv(rows, by), media_type="text/csv")
        return JSONResponse(
            {"object": "pinfactory.costs", "by": by, "unit": unit, "data": spend_json(rows)}
        )

    async def costs(self, http: HTTPRequest) -> Response:
        self._admin(http)
        return await self._spend(http, await self._unit(http.query_params.get("unit")), "unit")

    async def unit_costs(self, http: HTTPRequest) -> Response:
        caller = self._caller(http)
        if http.query_params.get("unit") not in (None, caller.unit):
            raise ForbiddenError("a unit key reads only its own unit's costs", param="unit")
        return await self._spend(http, caller.unit, "user")

    async def reviews(self, http: HTTPRequest) -> Response:
        self._admin(http)
        status = http.query_params.get("status", "pending")
        if status not in REVIEW_STATES:
            raise RequestError(
                f"'status' must be one of {', '.join(REVIEW_STATES)}; got '{status}'",
                param="status",
            )
        unit = await self._unit(http.query_params.get("unit"))
        found = await self.gateway.ready.ledger.reviews(
            None if status == "all" else status, unit, _limit(http)
        )
        return JSONResponse({"object": "list", "data": [full(r) for r in found]})

    async def review(self, http: HTTPRequest) -> Response:
        self._admin(http)
        review = await self.gateway.ready.reviews.get(http.path_params["review_id"])
        return JSONResponse(full(review))

    async def decide(self, http: HTTPRequest) -> Response:
        """``POST /admin/reviews/{id}`` with ``{"action": "approve"|"override", ...}``.

        Approving a request held by a quota or budget's ``queue`` policy runs it
        on its member first (``Pipeline.execute_approved``); the response then
        carries the member's answer.
        """
        caller = self._admin(http)
        body = await _json_body(http)
        action = body.get("action")
        reviewer = body.get("reviewer") or caller.user or "admin"
        note, answer = body.get("note"), body.get("answer")
        if not isinstance(reviewer, str) or not isinstance(note, str | None):
            raise RequestError("'reviewer' and 'note' must be strings", param="reviewer")
        pipeline, review_id = self.gateway.ready, http.path_params["review_id"]
        queue = pipeline.reviews
        if action == "approve":  # a request held by a queue policy runs here, then is released
            review = await pipeline.execute_approved(review_id, reviewer, note)
        elif action == "override":
            if not isinstance(answer, str):
                raise RequestError(
                    "an override needs the replacement 'answer' (a string)", param="answer"
                )
            review = await queue.override(review_id, reviewer, answer, note)
        else:
            raise RequestError(
                f"'action' must be 'approve' or 'override'; got {action!r}", param="action"
            )
        return JSONResponse(full(review))

    async def unit_review(self, http: HTTPRequest) -> Response:
        caller = self._caller(http)
        unit = None if self.gateway.keyring.open else caller.unit
        review = await self.gateway.ready.reviews.get(http.path_params["review_id"], unit)
        return JSONResponse(public(review))

    async def audit_verify(self, http: HTTPRequest) -> Response:
        self._admin(http)
        report = await verify_ledger(self.gateway.ready.ledger)
        return JSONResponse(
            {
                "intact": report.intact,
                "checked": report.checked,
                "broken_entry": report.broken_seq,
                "broken_row": report.broken_row,
                "problem": report.problem,
            }
        )

    async def audit_explain(self, http: HTTPRequest) -> Response:
        self._admin(http)
        request_id = http.path_params["request_id"]
        records = await self.gateway.ready.ledger.audit(request_id)
        if not records:
            raise NotFound(f"no audit entries for request '{request_id}'", param="request_id")
        story = explain(request_id, records)
        return JSONResponse(
            {
                "request_id": request_id,
                "final": story.final,
                "failures": story.failures,
                "entries": [
                    {"seq": r.seq, "kind": r.kind, "payload": data} for r, data in story.steps
                ],
            }
        )


def admin_routes(gateway: Gateway) -> list[Route]:
    admin = Admin(gateway)
    return [
        Route("/admin/costs", admin.costs, methods=["GET"]),
        Route("/admin/reviews", admin.reviews, methods=["GET"]),
        Route("/admin/reviews/{review_id}", admin.review, methods=["GET"]),
        Route("/admin/reviews/{review_id}", admin.decide, methods=["POST"]),
        Route("/admin/audit/verify", admin.audit_verify, methods=["GET"]),
        Route("/admin/audit/{request_id}", admin.audit_explain, methods=["GET"]),
        Route("/v1/costs", admin.unit_costs, methods=["GET"]),
        Route("/v1/reviews/{review_id}", admin.unit_review, methods=["GET"]),
    ]


def _limit(http: HTTPRequest) -> int:
    text = http.query_params.get("limit", "100")
    if not text.isdigit() or not 0 < int(text) <= 10_000:
        raise RequestError(
            f"'limit' must be an integer from 1 to 10000; got '{text}'", param="limit"
        )
    return int(text)


async def _json_body(http: HTTPRequest) -> dict[str, Any]:
    raw = await http.body()
    if len(raw) > MAX_BODY:
        raise RequestError(f"request body exceeds {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    return body
