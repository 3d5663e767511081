"""The OpenAPI 3.1 document of the OpenAI-compatible API, served at ``/openapi.json``.

Generated from the types the gateway itself validates with, so it says what the server
does: the request body is :func:`~pinfactory.gateway.openai_types.request_adapter`'s
schema with OpenAI's value ranges (:mod:`pinfactory.gateway.checks`) written in, the
answer ``openai.types.chat.ChatCompletion``'s, errors OpenAI's error object. Rules that
span fields (``top_logprobs`` needs ``logprobs``, ``tool_choice`` needs ``tools``,
``stream_options`` needs ``stream``, a tool name 1-64 of ``[A-Za-z0-9_-]``) are in the
descriptions; breaking one is a 400 like any other.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.completion_create_params import CompletionCreateParamsBase
from openai.types.embedding_create_params import EmbeddingCreateParams
from openai.types.responses import Response
from pydantic import BaseModel

from pinfactory.gateway.checks import (
    MAX_CHOICES,
    MAX_METADATA_KEY,
    MAX_METADATA_VALUE,
    MAX_SAFETY_IDENTIFIER,
    SIZES,
)
from pinfactory.gateway.messages import MessagesBody
from pinfactory.gateway.openai_types import params_adapter, request_adapter
from pinfactory.gateway.responses import ResponsesBody

REF = "#/components/schemas/{model}"
_RANGES = {
    "temperature": {"minimum": 0, "maximum": 2},
    "top_p": {"minimum": 0, "maximum": 1},
    "presence_penalty": {"minimum": -2, "maximum": 2},
    "frequency_penalty": {"minimum": -2, "maximum": 2},
    "n": {"minimum": 1, "maximum": MAX_CHOICES},
    "top_logprobs": {"minimum": 0, "maximum": 20},
    "max_tokens": {"minimum": 1},
    "max_completion_tokens": {"minimum": 1},
}
_ERRORS = {
    "400": "the body breaks a rule; the message names the field and what is allowed",
    "401": "missing, malformed, unknown or revoked API key",
    "404": "unknown model",
    "413": "body too large",
    "429": "a quota or budget refuses the request",
    "502": "the member failed (its upstream refused, broke or sent garbage)",
    "504": "the member did not answer in time",
}


class _Error(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorBody(BaseModel):
    """OpenAI's error object."""

    error: _Error


@cache
def openapi_document(title: str = "pinfactory") -> dict[str, Any]:
    """The document (built once, on first request: about 3 s of CPU, most of it the
    Responses types)."""
    schemas: dict[str, Any] = {}
    request = _split(request_adapter().json_schema(ref_template=REF), schemas)
    _write_rules(request)
    schemas["ChatCompletionRequest"] = request
    schemas["ChatCompletion"] = _split(ChatCompletion.model_json_schema(ref_template=REF), schemas)
    schemas["Error"] = _split(ErrorBody.model_json_schema(ref_template=REF), schemas)
    schemas["Model"] = _MODEL
    schemas["ModelList"] = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title}: OpenAI-compatible API",
            "version": "1",
            "description": "One OpenAI-compatible endpoint in front of a routed, verified, "
            "audited team of models and tools.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/chat/completions": {"post": _chat()},
            "/v1/completions": {"post": _completions(schemas)},
            "/v1/messages": {"post": _messages(schemas)},
            "/v1/embeddings": {"post": _embeddings(schemas)},
            "/v1/responses": {"post": _responses(schemas)},
            "/v1/responses/{response_id}": {
                "get": {
                    **_get("A stored response of the caller's unit", "Response"),
                    "parameters": [
                        {
                            "name": "response_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                }
            },
            "/v1/models": {"get": _get("Every model: 'auto' and each enabled member", "ModelList")},
            "/v1/models/{model}": {
                "get": {
                    **_get("One model", "Model"),
                    "parameters": [
                        {
                            "name": "model",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                }
            },
        },
    }


def _chat() -> dict[str, Any]:
    return _post(
        "Create a chat completion",
        "createChatCompletion",
        "ChatCompletionRequest",
        "ChatCompletion",
        "the answer, with a 'pinfactory' block (member, reason, cost); "
        "with stream: true, server-sent chat.completion.chunk events",
        stream=True,
    )


def _post(
    summary: str,
    operation: str,
    request: str,
    response: str,
    description: str,
    *,
    stream: bool = False,
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}
    }
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "summary": summary,
        "operationId": operation,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}
            },
        },
        "responses": {
            "200": {"description": description, "content": content},
            **_error_responses(_ERRORS),
        },
    }


def _completions(schemas: dict[str, Any]) -> dict[str, Any]:
    body = _split(
        params_adapter(CompletionCreateParamsBase).json_schema(ref_template=REF),
        schemas,
        "Completions",
    )
    properties = body["properties"]
    properties["model"] = {
        "type": "string",
        "minLength": 1,
        "description": "a member's name, or 'auto' to let the team route",
    }
    properties["stream"] = {"type": ["boolean", "null"]}
    properties["prompt"]["description"] = (
        "one non-empty string (or a list of one): one prompt per request, as text"
    )
    properties["suffix"]["description"] = "not served: must be null"
    properties["best_of"]["description"] = "1 only (ask for n choices instead)"
    properties["logprobs"]["description"] = "0-5: that many most likely tokens per position"
    schemas["CompletionRequest"] = body
    schemas["Completion"] = _split(Completion.model_json_schema(ref_template=REF), schemas)
    return _post(
        "Create a completion (the legacy text API, over the chat pipeline)",
        "createCompletion",
        "CompletionRequest",
        "Completion",
        "the text_completion, with a 'pinfactory' block; with stream: true, server-sent "
        "text_completion chunks",
        stream=True,
    )


def _messages(schemas: dict[str, Any]) -> dict[str, Any]:
    body = _split(MessagesBody.model_json_schema(ref_template=REF), schemas, "Messages")
    body["properties"]["model"]["description"] = "a member's name, or 'auto' to let the team route"
    schemas["MessagesRequest"] = body
    schemas["Message"] = _MESSAGE
    schemas["AnthropicError"] = _ANTHROPIC_ERROR
    operation = _post(
        "Create a message (Anthropic's Messages API, over the chat pipeline)",
        "createMessage",
        "MessagesRequest",
        "Message",
        "the message, with a 'pinfactory' block; with stream: true, server-sent Messages "
        "events (message_start ... message_stop)",
        stream=True,
    )
    ref = {"$ref": "#/components/schemas/AnthropicError"}
    for status, answer in operation["responses"].items():
        if status != "200":
            answer["content"] = {"application/json": {"schema": ref}}
    operation["security"] = [{"bearer": []}, {"apiKey": []}, {}]
    return operation


def _embeddings(schemas: dict[str, Any]) -> dict[str, Any]:
    body = _split(params_adapter(EmbeddingCreateParams).json_schema(ref_template=REF), schemas)
    properties = body["properties"]
    properties["model"] = {
        "type": "string",
        "description": "a member serving embeddings, or 'auto' for the cheapest",
    }
    properties["dimensions"]["minimum"] = 1
    properties["input"]["description"] = (
        "a non-empty string, or 1-2048 of them, or token arrays (members with token_input); "
        "no empty string or array"
    )
    schemas["EmbeddingRequest"] = body
    schemas["EmbeddingList"] = _split(
        CreateEmbeddingResponse.model_json_schema(ref_template=REF), schemas
    )
    return _post(
        "Create embeddings",
        "createEmbedding",
        "EmbeddingRequest",
        "EmbeddingList",
        "one embedding per input (floats, or base64 float32 when asked), with a 'pinfactory' block",
    )


def _responses(schemas: dict[str, Any]) -> dict[str, Any]:
    body = _split(
        params_adapter(ResponsesBody).json_schema(ref_template=REF), schemas, "ResponsesRequest"
    )
    properties = body["properties"]
    properties["model"] = {
        "type": "string",
        "minLength": 1,
        "description": "a member's name, or 'auto' to let the team route",
    }
    properties["previous_response_id"]["description"] = (
        "a stored response of the caller's own unit; any other id is a 404"
    )
    properties["tools"]["description"] = "function tools only"
    schemas["ResponseRequest"] = body
    schemas["Response"] = _split(Response.model_json_schema(ref_template=REF), schemas, "Responses")
    return _post(
        "Create a response (the Responses API, over the chat pipeline)",
        "createResponse",
        "ResponseRequest",
        "Response",
        "the response, with a 'pinfactory' block; with stream: true, server-sent "
        "Responses events (response.created ... response.completed)",
        stream=True,
    )


def _get(summary: str, schema: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {
            "200": {
                "description": summary,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                },
            },
            **_error_responses({k: v for k, v in _ERRORS.items() if k in ("401", "404")}),
        },
    }


def _error_responses(errors: dict[str, str]) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    return {
        status: {"description": text, "content": {"application/json": {"schema": ref}}}
        for status, text in errors.items()
    }


def _split(schema: dict[str, Any], into: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Move ``$defs`` into the components. A name already there for another schema (the
    Responses request and answer types share names with chat's) takes ``prefix``."""
    defs = schema.get("$defs", {})
    clashes = [n for n, d in defs.items() if n in into and into[n] != d]
    if clashes and not prefix:
        raise ValueError(f"two different schemas are both called {clashes[0]}")
    if clashes:
        text = orjson.dumps(schema).decode()
        for name in clashes:
            text = text.replace(
                f'"{REF.format(model=name)}"', f'"{REF.format(model=prefix + name)}"'
            )
        schema = orjson.loads(text)
        schema["$defs"] = {
            (prefix + n if n in clashes else n): d for n, d in schema["$defs"].items()
        }
    for name, definition in schema.pop("$defs", {}).items():
        if into.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both called {name}")
    return schema


def _write_sizes(properties: dict[str, Any]) -> None:
    """OpenAI's documented sizes (``checks.SIZES``, metadata, logit_bias, safety_identifier)."""
    for name, (low, high, _) in SIZES.items():
        for variant in properties[name].get("anyOf", [properties[name]]):
            if variant.get("type") == "array":
                variant.update(minItems=low, maxItems=high)
            elif variant.get("type") == "object":
                variant.update(maxProperties=high)
    for variant in properties["metadata"]["anyOf"]:
        if variant.get("type") == "object":
            variant["propertyNames"] = {"maxLength": MAX_METADATA_KEY}
            variant["additionalProperties"]["maxLength"] = MAX_METADATA_VALUE
    for variant in properties["logit_bias"]["anyOf"]:
        if variant.get("type") == "object":
            variant["propertyNames"] = {"pattern": "^[0-9]+$"}  # token ids
            variant["additionalProperties"].update(minimum=-100, maximum=100)
    properties["safety_identifier"]["anyOf"][0]["maxLength"] = MAX_SAFETY_IDENTIFIER


def _write_rules(request: dict[str, Any]) -> None:
    properties = request["properties"]
    for name, bounds in _RANGES.items():
        for variant in properties[name].get("anyOf", [properties[name]]):
            if variant.get("type") in ("integer", "number"):
                variant.update(bounds)
    properties["model"] = {
        "type": "string",
        "minLength": 1,
        "description": "a member's name, or 'auto' to let the team route",
    }
    properties["messages"]["minItems"] = 1
    _write_sizes(properties)
    properties["messages"]["description"] = "at least one message must have content"
    properties["documents"] = {
        "type": "array",
        "description": "pinfactory: passages to ground the answer on",
        "items": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": {"type": "string", "minLength": 1}, "title": {"type": "string"}},
        },
    }
    for name, rule in {
        "top_logprobs": "needs logprobs: true",
        "tool_choice": "needs tools; a named tool must be one of them",
        "stream_options": "needs stream: true",
        "tools": "names are 1-64 of [A-Za-z0-9_-], each once; parameters a valid JSON Schema",
    }.items():
        properties[name]["description"] = rule


_MODEL: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
        "pinfactory": {
            "type": "object",
            "description": "the member's kind, tier, tags, price and capabilities",
        },
    },
}

_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": {"type": "string"},
        "content": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["text", "tool_use"]},
                    "text": {"type": "string"},
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "input": {"type": "object"},
                },
            },
        },
        "stop_reason": {"enum": ["end_turn", "max_tokens", "tool_use", "refusal"]},
        "stop_sequence": {"type": ["string", "null"]},
        "usage": {
            "type": "object",
            "required": ["input_tokens", "output_tokens"],
            "properties": {
                "input_tokens": {"type": "integer"},
                "output_tokens": {"type": "integer"},
            },
        },
    },
}
_ANTHROPIC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "code": {"type": "string"},
                "param": {"type": ["string", "null"]},
            },
        },
    },
}
