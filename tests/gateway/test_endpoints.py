"""/v1/models/{id}, OpenAI-shaped 404/405 everywhere, and an /openapi.json that says what
the server does (its request schema accepts the conformance table's bodies and refuses the
out-of-range ones)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from openai import OpenAI

from tests.gateway.test_conformance import FORWARDED, REFUSED

SCHEMA_REFUSES = {
    "n-zero",
    "n-negative",
    "n-too-many",
    "n-string",
    "temperature-high",
    "top-p-high",
    "presence-penalty-high",
    "max-completion-tokens-zero",
    "top-logprobs-high",
    "model-missing",
    "messages-empty",
    "role-unknown",
    "content-part-unknown",
    "tool-without-function",
    "json-schema-missing",
}  # the rest break rules that span fields, which the descriptions state


def test_a_model_by_id_is_the_member_with_its_capabilities(gateway_url: str) -> None:
    with OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as client:
        model = client.models.retrieve("calculator")
        auto = client.models.retrieve("auto")
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve("nobody")
    assert (model.id, model.object, model.owned_by) == ("calculator", "model", "pinfactory")
    block = (model.model_extra or {})["pinfactory"]
    assert block["kind"] == "calculator" and block["capabilities"]["tools"] is False
    assert auto.id == "auto"
    assert caught.value.status_code == 404
    assert caught.value.body == {
        "message": "unknown model 'nobody'; available: auto, local, calculator, orders",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "message", "code"),
    [
        (
            "GET",
            "/v1/nowhere",
            404,
            "no such endpoint: GET /v1/nowhere; see /openapi.json",
            "not_found",
        ),
        (
            "POST",
            "/v1/audio/speech",
            404,
            "no such endpoint: POST /v1/audio/speech; see /openapi.json",
            "not_found",
        ),
        (
            "GET",
            "/v1/chat/completions",
            405,
            "method GET is not allowed on /v1/chat/completions; allowed: POST",
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/v1/models",
            405,
            "method DELETE is not allowed on /v1/models; allowed: GET, HEAD",
            "method_not_allowed",
        ),
    ],
)
def test_unknown_routes_and_methods_are_openai_errors(
    gateway_url: str, method: str, path: str, status: int, message: str, code: str
) -> None:
    response = httpx.request(method, gateway_url + path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


@pytest.fixture(scope="module")
def document(gateway_url: str) -> dict[str, Any]:
    response = httpx.get(gateway_url + "/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    Draft202012Validator.check_schema(document["components"]["schemas"][name])
    return Draft202012Validator({**document, "$ref": f"#/components/schemas/{name}"})


def test_the_openapi_document_lists_the_api(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) >= {"/v1/chat/completions", "/v1/models", "/v1/models/{model}"}
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]) == {"200", "400", "401", "404", "413", "429", "502", "504"}


@pytest.mark.parametrize("case", FORWARDED, ids=lambda c: c.id)
def test_the_documented_request_schema_accepts_what_the_server_accepts(
    document: dict[str, Any], case: Any
) -> None:
    validator(document, "ChatCompletionRequest").validate(case.body)


@pytest.mark.parametrize(
    "case",
    [c for c in REFUSED if c.id in SCHEMA_REFUSES],
    ids=lambda c: c.id,
)
def test_the_documented_request_schema_refuses_out_of_range_values(
    document: dict[str, Any], case: Any
) -> None:
    assert not validator(document, "ChatCompletionRequest").is_valid(case.body)


def test_the_documented_answer_schema_matches_an_answer(
    gateway_url: str, document: dict[str, Any]
) -> None:
    body = {"model": "calculator", "messages": [{"role": "user", "content": "2 + 3"}]}
    answer = httpx.post(gateway_url + "/v1/chat/completions", json=body).json()
    validator(document, "ChatCompletion").validate(answer)
    error = httpx.post(gateway_url + "/v1/chat/completions", json={**body, "n": 0}).json()
    validator(document, "Error").validate(error)


EMBEDDING_BODIES = [
    {"model": "auto", "input": "hello"},
    {"model": "minilm", "input": ["a", "b"], "encoding_format": "base64"},
    {"model": "remote", "input": [[101, 2023], [7592]], "dimensions": 64, "user": "u1"},
    {"model": "remote", "input": [101, 2023], "encoding_format": "float"},
]
RESPONSE_BODIES = [
    {"model": "auto", "input": "hello", "instructions": "Be brief.", "store": False},
    {
        "model": "auto",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "18C"},
        ],
        "tools": [{"type": "function", "name": "w", "parameters": {}, "strict": False}],
        "tool_choice": {"type": "function", "name": "w"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
        "max_output_tokens": 50,
        "previous_response_id": "resp_1",
        "stream": True,
    },
]


def test_every_endpoint_is_in_the_document(document: dict[str, Any]) -> None:
    assert set(document["paths"]) == {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/messages",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/responses/{response_id}",
        "/v1/models",
        "/v1/models/{model}",
    }


@pytest.mark.parametrize("body", EMBEDDING_BODIES)
def test_the_embeddings_schema_accepts_what_the_server_accepts(
    document: dict[str, Any], body: dict[str, Any]
) -> None:
    validator(document, "EmbeddingRequest").validate(body)
    assert not validator(document, "EmbeddingRequest").is_valid({**body, "dimensions": 0})


@pytest.mark.parametrize("body", RESPONSE_BODIES)
def test_the_responses_schema_accepts_what_the_server_accepts(
    document: dict[str, Any], body: dict[str, Any]
) -> None:
    validator(document, "ResponseRequest").validate(body)


def test_a_response_matches_the_documented_answer(
    gateway_url: str, document: dict[str, Any]
) -> None:
    body = {"model": "calculator", "input": "2 + 3", "store": False}
    answer = httpx.post(gateway_url + "/v1/responses", json=body)
    assert answer.status_code == 200, answer.text
    validator(document, "Response").validate(answer.json())
    assert answer.json()["output"][0]["content"][0]["text"].endswith("5")


def test_every_response_outside_the_pipeline_carries_the_ids(gateway_url: str) -> None:
    """``GET /v1/models``, a model by id, and every 404/405: a server ``x-request-id``
    and the client's own ``X-Request-Id`` back as ``x-correlation-id``, as a chat
    response has them."""
    with OpenAI(
        base_url=gateway_url + "/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"X-Request-Id": "trace-42"},
    ) as client:
        listed = client.models.with_raw_response.list()
        one = client.models.with_raw_response.retrieve("calculator")
        with pytest.raises(openai.NotFoundError) as unknown:
            client.models.retrieve("nobody")
        with pytest.raises(openai.NotFoundError) as nowhere:
            client.get("/nowhere", cast_to=object)
        with pytest.raises(openai.APIStatusError) as wrong:
            client.delete("/models", cast_to=object)
    answers = [listed, one, unknown.value.response, nowhere.value.response, wrong.value.response]
    assert [a.status_code for a in answers] == [200, 200, 404, 404, 405]
    for answer in answers:
        assert answer.headers["x-request-id"].startswith("req_"), answer.headers
        assert answer.headers["x-correlation-id"] == "trace-42", answer.headers
    assert len({a.headers["x-request-id"] for a in answers}) == len(answers)
    assert {m.strip() for m in wrong.value.response.headers["allow"].split(",")} == {"GET", "HEAD"}


def test_messages_routes_answer_anthropic_errors(gateway_url: str) -> None:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as client:
        with pytest.raises(anthropic.NotFoundError) as missing:
            client.messages.batches.retrieve("msgbatch_1")
        with pytest.raises(anthropic.APIStatusError) as wrong:
            client.get("/v1/messages", cast_to=object)
    assert missing.value.body == {
        "type": "error",
        "error": {
            "type": "not_found_error",
            "message": "no such endpoint: GET /v1/messages/batches/msgbatch_1; see /openapi.json",
            "code": "not_found",
            "param": None,
        },
    }
    assert wrong.value.status_code == 405
    body = wrong.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "method GET is not allowed on /v1/messages; allowed: POST"
    assert missing.value.response.headers["x-request-id"].startswith("req_")
