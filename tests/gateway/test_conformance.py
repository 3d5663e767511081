"""Chat Completions conformance: request shapes through the gateway to a recording upstream.

Each case posts one body to the gateway (a real server on loopback) whose ``openai_http``
member points at a real recording upstream, then asserts the exact payload the upstream
received (the client's body with only ``model`` swapped for the member's) and the exact
response the client saw: the upstream's choices and usage unchanged under the gateway's
id and the member's name, or an OpenAI-shaped 400 naming the field, sent before any call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinfactory.testing.recording import (
    USAGE,
    RecordingUpstream,
    Scripted,
    chunk,
    completion,
)
from tests.conftest import ledger_rows
from tests.gateway.conftest import gateway_for

HELLO = [{"role": "user", "content": "Say hello."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}
ROUND_TRIP = [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
}
TOOL_ANSWER = completion(
    None,
    choices=[
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [CALL],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
)
LOGPROBS = {
    "content": [{"token": "ok", "logprob": -0.01, "bytes": [111, 107], "top_logprobs": []}],
    "refusal": None,
}


@dataclass
class Case:
    id: str
    body: dict[str, Any]
    answer: Scripted | None = None
    status: int = 200
    error: str | None = None  # the exact message of a 400
    param: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # not part of the case body


def ok(id: str, **fields: Any) -> Case:
    return Case(id, {"model": "remote", "messages": HELLO, **fields})


def says(id: str, messages: list[dict[str, Any]], **fields: Any) -> Case:
    return Case(id, {"model": "remote", "messages": messages, **fields})


def bad(id: str, error: str, param: str | None, **fields: Any) -> Case:
    body = {"model": "remote", "messages": HELLO, **fields}
    return Case(
        id, {k: v for k, v in body.items() if v is not ...}, status=400, error=error, param=param
    )


def answers(id: str, answer: dict[str, Any], **fields: Any) -> Case:
    return Case(id, {"model": "remote", "messages": HELLO, **fields}, answer=Scripted(answer))


FORWARDED = [
    ok("plain"),
    says("system-and-user", [{"role": "system", "content": "Be brief."}, *HELLO]),
    says("system-only", [{"role": "system", "content": "Greet the user."}]),
    says("developer-only", [{"role": "developer", "content": "Greet the user."}]),
    says(
        "text-parts",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Can you tell me the status of my"},
                    {"type": "text", "text": "order 1042?"},
                ],
            }
        ],
    ),
    says(
        "image-part",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            }
        ],
    ),
    says(
        "image-part-detail",
        [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                    }
                ],
            }
        ],
    ),
    says("named-user", [{"role": "user", "content": "hi", "name": "ada"}]),
    says("tool-round-trip", ROUND_TRIP, tools=[WEATHER]),
    says(
        "assistant-text-parts",
        [
            *HELLO,
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": "Again."},
        ],
    ),
    says(
        "assistant-refusal-in-history",
        [*HELLO, {"role": "assistant", "refusal": "I can't."}, {"role": "user", "content": "Ok."}],
    ),
    ok("tools", tools=[WEATHER]),
    ok("tools-two", tools=[WEATHER, TIME]),
    ok("tool-choice-auto", tools=[WEATHER], tool_choice="auto"),
    ok("tool-choice-none", tools=[WEATHER], tool_choice="none"),
    ok("tool-choice-required", tools=[WEATHER], tool_choice="required"),
    ok(
        "tool-choice-named",
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    ),
    ok("parallel-tool-calls", tools=[WEATHER, TIME], parallel_tool_calls=False),
    ok("response-format-text", response_format={"type": "text"}),
    ok("response-format-json-object", response_format={"type": "json_object"}),
    ok("response-format-json-schema", response_format=SCHEMA),
    ok("seed", seed=42),
    ok("top-p", top_p=0.5),
    ok("temperature-zero", temperature=0),
    ok("presence-penalty", presence_penalty=0.5),
    ok("frequency-penalty", frequency_penalty=-0.5),
    ok("logit-bias", logit_bias={"50256": -100}),
    ok("user", user="user-123"),
    ok("metadata", metadata={"team": "support"}),
    ok("service-tier", service_tier="flex"),
    ok("reasoning-effort", reasoning_effort="low"),
    ok("max-completion-tokens", max_completion_tokens=50),
    ok("max-tokens", max_tokens=50),
    ok("stop-string", stop="END"),
    ok("stop-list", stop=["END", "STOP"]),
    ok("store", store=False),
    ok("modalities", modalities=["text"]),
    ok("verbosity", verbosity="low"),
    ok("prompt-cache-key", prompt_cache_key="k1"),
    ok("safety-identifier", safety_identifier="h-1"),
    ok("prediction", prediction={"type": "content", "content": "Hello"}),
    answers(
        "n-choices",
        completion(
            "a",
            choices=[
                {
                    "index": i,
                    "message": {"role": "assistant", "content": t},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
                for i, t in enumerate(["a", "b", "c"])
            ],
        ),
        n=3,
    ),
    answers("tool-call-answer", TOOL_ANSWER, tools=[WEATHER]),
    answers(
        "logprobs-answer",
        completion(
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "logprobs": LOGPROBS,
                    "finish_reason": "stop",
                }
            ]
        ),
        logprobs=True,
        top_logprobs=2,
    ),
    answers(
        "refusal-answer",
        completion(
            choices=[
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "refusal": "I can't help with that.",
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ]
        ),
    ),
    answers(
        "fingerprint-and-tier", completion(system_fingerprint="fp_abc", service_tier="default")
    ),
    answers(
        "usage-details",
        completion(
            usage={
                "prompt_tokens": 20,
                "completion_tokens": 30,
                "total_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 10, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 25, "audio_tokens": 0},
            }
        ),
    ),
]

REFUSED = [
    bad("n-zero", "'n' must be between 1 and 128 (got 0)", "n", n=0),
    bad("n-negative", "'n' must be between 1 and 128 (got -1)", "n", n=-1),
    bad("n-too-many", "'n' must be between 1 and 128 (got 129)", "n", n=129),
    bad("n-string", "'n': Input should be a valid integer (got '3')", "n", n="3"),
    bad(
        "temperature-high",
        "'temperature' must be between 0 and 2 (got 3)",
        "temperature",
        temperature=3,
    ),
    bad("top-p-high", "'top_p' must be between 0 and 1 (got 2)", "top_p", top_p=2),
    bad(
        "presence-penalty-high",
        "'presence_penalty' must be between -2 and 2 (got 3)",
        "presence_penalty",
        presence_penalty=3,
    ),
    bad(
        "max-completion-tokens-zero",
        "'max_completion_tokens' must be at least 1 (got 0)",
        "max_completion_tokens",
        max_completion_tokens=0,
    ),
    bad(
        "top-logprobs-alone",
        "'top_logprobs' needs 'logprobs': true",
        "top_logprobs",
        top_logprobs=2,
    ),
    bad(
        "top-logprobs-high",
        "'top_logprobs' must be between 0 and 20 (got 21)",
        "top_logprobs",
        logprobs=True,
        top_logprobs=21,
    ),
    bad(
        "logit-bias-range",
        "'logit_bias.50256' must be between -100 and 100 (got 200)",
        "logit_bias",
        logit_bias={"50256": 200},
    ),
    bad(
        "stream-options-without-stream",
        "'stream_options' is only allowed when 'stream' is true",
        "stream_options",
        stream_options={"include_usage": True},
    ),
    bad(
        "tool-choice-unknown-tool",
        "'tool_choice' names tool 'get_time', which is not offered; tools: get_weather",
        "tool_choice",
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    ),
    bad(
        "tool-choice-without-tools",
        "'tool_choice' is only allowed when 'tools' are given",
        "tool_choice",
        tool_choice="required",
    ),
    bad(
        "tool-choice-bad-word",
        "'tool_choice': Input should be 'none', 'auto' or 'required' (got 'always')",
        "tool_choice",
        tools=[WEATHER],
        tool_choice="always",
    ),
    bad(
        "tool-bad-name",
        "'tools.0.function.name' must be 1-64 letters, digits, '_' or '-' (got 'get weather')",
        "tools.0.function.name",
        tools=[{"type": "function", "function": {"name": "get weather"}}],
    ),
    bad(
        "tool-twice",
        "'tools.1.function.name': tool 'get_weather' is offered twice",
        "tools.1.function.name",
        tools=[WEATHER, WEATHER],
    ),
    bad(
        "tool-without-function",
        "'tools.0.function' is required",
        "tools.0.function",
        tools=[{"type": "function"}],
    ),
    bad(
        "tool-unknown-type",
        "'tools.0.type' must be one of 'function', 'custom' (got 'browser')",
        "tools.0.type",
        tools=[{"type": "browser"}],
    ),
    bad(
        "tool-schema-invalid",
        "'tools.0.function.parameters' is not a valid JSON Schema at 'type': "
        "'objekt' is not valid under any of the given schemas",
        "tools.0.function.parameters",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}],
    ),
    bad(
        "json-schema-invalid",
        "'response_format.json_schema.schema' is not a valid JSON Schema at 'required': "
        "'name' is not of type 'array'",
        "response_format.json_schema.schema",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object", "required": "name"}},
        },
    ),
    bad(
        "json-schema-missing",
        "'response_format.json_schema' is required",
        "response_format.json_schema",
        response_format={"type": "json_schema"},
    ),
    bad(
        "json-schema-bad-name",
        "'response_format.json_schema.name' must be 1-64 letters, digits, '_' or '-'",
        "response_format.json_schema.name",
        response_format={"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}},
    ),
    bad(
        "response-format-unknown",
        "'response_format.type' must be one of 'text', 'json_schema', 'json_object' (got 'yaml')",
        "response_format.type",
        response_format={"type": "yaml"},
    ),
    bad(
        "content-part-unknown",
        "'messages.0.content.0.type' must be one of 'text', 'image_url', 'input_audio', 'file' "
        "(got 'video')",
        "messages.0.content.0.type",
        messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}],
    ),
    bad(
        "image-part-in-system",
        "'messages.0.content.0.type': Input should be 'text' (got 'image_url')",
        "messages.0.content.0.type",
        messages=[
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
        ],
    ),
    bad(
        "role-unknown",
        "'messages.0.role' must be one of 'developer', 'system', 'user', 'assistant', 'tool', "
        "'function' (got 'wizard')",
        "messages.0.role",
        messages=[{"role": "wizard", "content": "x"}],
    ),
    bad(
        "tool-message-without-id",
        "'messages.1.tool_call_id' is required",
        "messages.1.tool_call_id",
        messages=[*HELLO, {"role": "tool", "content": "18C"}],
    ),
    bad(
        "model-missing",
        "'model' is required: a member's name, or 'auto' to let the team route",
        "model",
        model=...,
    ),
    bad(
        "messages-empty",
        "'messages' must be a non-empty list of {role, content} objects",
        "messages",
        messages=[],
    ),
    bad(
        "messages-silent",
        "'messages' needs at least one message with content",
        "messages",
        messages=[{"role": "user", "content": ""}],
    ),
    bad("stop-not-strings", "'stop.0': Input should be a valid string (got 1)", "stop.0", stop=[1]),
]


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    with gateway_for(
        f"""\
name: conformance
members:
  - {{name: remote, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
  - {{name: calculator, kind: calculator}}
routing: {{kind: rules, fallback: remote}}
""",
        tmp_path_factory.mktemp("conformance"),
    ) as served:
        yield served


def post(url: str, body: dict[str, Any], request_id: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        content=json.dumps(body),
        headers={"x-request-id": request_id, "content-type": "application/json"},
    )


def seen_by_client(answer: dict[str, Any], request_id: str) -> dict[str, Any]:
    """What the client must see for an upstream answer: its choices, usage, fingerprint and
    tier unchanged, under the gateway's id and the member's name."""
    view = {
        "id": "chatcmpl-" + request_id.removeprefix("req_"),
        "object": "chat.completion",
        "model": "remote",
        "choices": answer["choices"],
        "usage": answer["usage"],
    }
    for key in ("system_fingerprint", "service_tier"):
        if key in answer:
            view[key] = answer[key]
    return view


@pytest.mark.parametrize("case", FORWARDED, ids=lambda c: c.id)
def test_every_field_reaches_the_upstream_and_every_answer_field_the_client(
    case: Case, gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    if case.answer is not None:
        recorder.answer(case.answer)
    request_id = f"req_conf_{case.id}"
    response = post(gateway[0], case.body, request_id)
    assert response.status_code == 200, response.text
    assert recorder.bodies == [{**case.body, "model": "upstream-model"}]
    body = response.json()
    assert body.pop("created") > 0
    assert body.pop("pinfactory")["member"] == "remote"
    answer = case.answer.body if case.answer is not None else completion()
    assert answer is not None
    assert body == seen_by_client(dict(answer), response.headers["x-request-id"])


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_bad_bodies_get_an_exact_400_before_any_call(
    case: Case, gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    request_id = f"req_bad_{case.id}"
    response = post(gateway[0], case.body, request_id)
    assert response.status_code == case.status
    assert response.json() == {
        "error": {
            "message": case.error,
            "type": "invalid_request_error",
            "param": case.param,
            "code": "invalid_request",
        }
    }
    assert recorder.bodies == []
    [row] = ledger_rows(gateway[1], f"correlation_id = '{request_id}'")
    assert row["status"] == 400 and case.error in row["error"]


def stream(url: str, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The request id the gateway gave the stream, and its chunks (without ``created``)."""
    chunks = []
    with httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        content=json.dumps({**body, "stream": True}),
        headers={"content-type": "application/json"},
    ) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk_body = json.loads(line.removeprefix("data: "))
                assert chunk_body.pop("created") > 0
                chunks.append(chunk_body)
    return request_id, chunks


def relayed(request_id: str, choices: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + request_id.removeprefix("req_"),
        "object": "chat.completion.chunk",
        "model": "remote",
        "choices": choices,
        **fields,
    }


def test_a_stream_without_usage_asks_no_stream_options(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    rid, chunks = stream(gateway[0], {"model": "remote", "messages": HELLO})
    assert recorder.bodies == [{"model": "upstream-model", "messages": HELLO, "stream": True}]
    assert chunks[-1].pop("pinfactory")["member"] == "remote"
    assert chunks == [
        relayed(rid, [{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
        relayed(rid, [{"index": 0, "delta": {"content": "o"}}]),
        relayed(rid, [{"index": 0, "delta": {"content": "k"}}]),
        relayed(rid, [{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    ]


def test_include_usage_follows_the_reference(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    body = {"model": "remote", "messages": HELLO, "stream_options": {"include_usage": True}}
    rid, chunks = stream(gateway[0], body)
    assert recorder.bodies == [{**body, "model": "upstream-model", "stream": True}]
    assert chunks[-1].pop("pinfactory")["member"] == "remote"
    assert chunks == [
        relayed(rid, [{"index": 0, "delta": {"role": "assistant", "content": ""}}], usage=None),
        relayed(rid, [{"index": 0, "delta": {"content": "o"}}], usage=None),
        relayed(rid, [{"index": 0, "delta": {"content": "k"}}], usage=None),
        relayed(rid, [{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=None),
        {**relayed(rid, []), "usage": USAGE},
    ]


def test_include_usage_false_is_forwarded_and_sends_no_usage_chunk(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    body = {"model": "remote", "messages": HELLO, "stream_options": {"include_usage": False}}
    _, chunks = stream(gateway[0], body)
    assert recorder.bodies == [{**body, "model": "upstream-model", "stream": True}]
    assert all(c["choices"] for c in chunks) and all("usage" not in c for c in chunks)


def test_streamed_tool_call_deltas_are_relayed_chunk_for_chunk(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    call_start = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    upstream_choices = [
        [{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [call_start]}}],
        [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
            }
        ],
        [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
            }
        ],
        [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
    ]
    recorder.answer(
        Scripted(chunks=[chunk(c, system_fingerprint="fp_1") for c in upstream_choices])
    )
    body = {"model": "remote", "messages": HELLO, "tools": [WEATHER]}
    rid, chunks = stream(gateway[0], body)
    assert recorder.bodies == [{**body, "model": "upstream-model", "stream": True}]
    assert chunks[-1].pop("pinfactory")["member"] == "remote"
    assert chunks == [relayed(rid, c, system_fingerprint="fp_1") for c in upstream_choices]


def test_an_upstream_400_is_relayed_as_a_400_naming_the_member(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    """The caller's fault as the upstream judged it: its status and error, the member
    named, no retry (``docs/reliability.md``)."""
    recorder.answer(Scripted({"error": {"message": "max_tokens is not supported"}}, status=400))
    response = post(gateway[0], {"model": "remote", "messages": HELLO}, "conf-up400")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "member 'remote': upstream refused the request (HTTP 400): "
            "max_tokens is not supported",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request",
        }
    }
    assert response.headers["x-pinfactory-member"] == "remote"
    assert response.headers["x-should-retry"] == "false"


def test_the_table_is_wide_enough() -> None:
    shapes = len(FORWARDED) + len(REFUSED) + 5  # and the five stream/error tests above
    assert shapes >= 60
    assert len({c.id for c in FORWARDED + REFUSED}) == len(FORWARDED) + len(REFUSED)


def test_text_parts_are_joined_for_routing() -> None:
    from pinfactory.request import text_of

    parts = [
        {"type": "text", "text": "Can you tell me the status of my"},
        {"type": "text", "text": "order 1042?"},
        {"type": "image_url", "image_url": {"url": "x"}},
    ]
    assert text_of(parts) == "Can you tell me the status of my order 1042?"
    assert text_of([{"type": "text", "text": "a\n"}, {"type": "text", "text": "b"}]) == "a\nb"
