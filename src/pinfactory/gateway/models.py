"""``GET /v1/models`` and ``GET /v1/models/{id}``: ``auto`` and every enabled member.

Each model object is OpenAI's (``id``, ``object``, ``created``, ``owned_by``) plus a
``pinfactory`` block: the member's kind, tier, tags, price and capabilities. An unknown
id is OpenAI's 404 (``model_not_found``), naming the models there are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinfactory.errors import UnknownModel
from pinfactory.gateway.errors import request_ids
from pinfactory.members.base import Member

if TYPE_CHECKING:
    from pinfactory.gateway.app import Gateway

AUTO = {"id": "auto", "object": "model", "created": 0, "owned_by": "pinfactory"}


def model_object(member: Member) -> dict[str, Any]:
    return {
        "id": member.name,
        "object": "model",
        "created": 0,
        "owned_by": "pinfactory",
        "pinfactory": {
            "kind": member.kind,
            "tier": member.tier,
            "tags": list(member.tags),
            "price": member.price.model_dump(mode="json"),
            "capabilities": member.capabilities.model_dump(mode="json"),
        },
    }


class Models:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def list(self, http: HTTPRequest) -> Response:
        self.gateway.keyring.identify(http.headers.get("authorization"))
        members = self.gateway.ready.members.values()
        listed = {"object": "list", "data": [AUTO, *map(model_object, members)]}
        return JSONResponse(listed, headers=request_ids(http))

    async def retrieve(self, http: HTTPRequest) -> Response:
        self.gateway.keyring.identify(http.headers.get("authorization"))
        name = http.path_params["model"]
        members = self.gateway.ready.members
        if name == "auto":
            return JSONResponse(AUTO, headers=request_ids(http))
        if name not in members:
            known = ", ".join(["auto", *members])
            raise UnknownModel(f"unknown model '{name}'; available: {known}", param="model")
        return JSONResponse(model_object(members[name]), headers=request_ids(http))


def model_routes(gateway: Gateway) -> list[Route]:
    models = Models(gateway)
    return [
        Route("/v1/models", models.list, methods=["GET"]),
        Route("/v1/models/{model:path}", models.retrieve, methods=["GET"]),
    ]
