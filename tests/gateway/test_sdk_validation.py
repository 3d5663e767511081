"""Bad input a fresh user sent with the official ``openai`` SDK: each is a short 400 (or
413/415) naming the field and what is allowed, recorded in the ledger, before any member
is called.

The SDK runs over loopback against a real gateway whose ``openai_http`` member points at
a real recording upstream (``recorder.bodies`` stays empty for a refused body). Bodies the
SDK cannot send (gzip, bytes that are not UTF-8) go through httpx to the same gateway.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI

from pinfactory.testing.recording import RecordingUpstream
from tests.conftest import ledger_rows
from tests.gateway.conftest import gateway_for, remote_team

HELLO = [{"role": "user", "content": "Say hello."}]
MODEL = "a member's name, or 'auto' to let the team route"


def tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


@dataclass(frozen=True)
class Refused:
    id: str
    fields: dict[str, Any]  # sent as the SDK's extra_body: they override its own
    param: str
    message: str


REFUSED = [
    Refused("model-empty", {"model": ""}, "model", f"'model' must not be empty: {MODEL}"),
    Refused("model-number", {"model": 5}, "model", f"'model' must be a string: {MODEL} (got 5)"),
    Refused(
        "model-null", {"model": None}, "model", f"'model' must be a string: {MODEL} (got None)"
    ),
    Refused(  # the SDK's voice type is any string or one of ten names: the names not listed
        "voice-number",
        {"modalities": ["text", "audio"], "audio": {"voice": 5, "format": "mp3"}},
        "audio.voice",
        "'audio.voice': Input should be a valid string (got 5)",
    ),
    Refused(
        "max-tokens-negative",
        {"max_tokens": -1},
        "max_tokens",
        "'max_tokens' must be at least 1 (got -1)",
    ),
    Refused(
        "nul-byte",
        {"messages": [{"role": "user", "content": "a\x00b"}]},
        "messages.0.content",
        "'messages.0.content' contains a NUL byte (\\u0000), which cannot be stored",
    ),
    Refused(
        "stop-five",
        {"stop": ["a", "b", "c", "d", "e"]},
        "stop",
        "'stop' must hold 1 to 4 stop sequences (got 5)",
    ),
    Refused(
        "stop-empty",
        {"stop": []},
        "stop",
        "'stop' must hold 1 to 4 stop sequences (got 0); leave it out for none",
    ),
    Refused(  # an empty stop sequence matches at once: the local model answered ""
        "stop-empty-string",
        {"stop": ""},
        "stop",
        "'stop' must not be empty: a stop sequence needs at least one character",
    ),
    Refused(
        "stop-empty-in-list",
        {"stop": ["END", ""]},
        "stop.1",
        "'stop.1' must not be empty: a stop sequence needs at least one character",
    ),
    Refused(
        "logit-bias-word",
        {"logit_bias": {"abc": 1}},
        "logit_bias",
        "'logit_bias' keys must be token ids, integers as strings like \"50256\" (got 'abc')",
    ),
    Refused(
        "tools-empty",
        {"tools": []},
        "tools",
        "'tools' must hold 1 to 128 tools (got 0); leave it out for none",
    ),
    Refused(
        "tools-too-many",
        {"tools": [tool(f"tool_{i}") for i in range(129)]},
        "tools",
        "'tools' must hold 1 to 128 tools (got 129)",
    ),
    Refused(
        "functions-empty",
        {"functions": []},
        "functions",
        "'functions' must hold 1 to 128 functions (got 0); leave it out for none",
    ),
    Refused(
        "function-bad-name",
        {"functions": [{"name": "get weather"}]},
        "functions.0.name",
        "'functions.0.name' must be 1-64 letters, digits, '_' or '-' (got 'get weather')",
    ),
    Refused(
        "metadata-too-many",
        {"metadata": {f"k{i}": "v" for i in range(17)}},
        "metadata",
        "'metadata' must hold at most 16 key-value pairs (got 17)",
    ),
    Refused(
        "metadata-long-key",
        {"metadata": {"k" * 65: "v"}},
        "metadata",
        f"'metadata' key {'k' * 20!r} is 65 characters long; the limit is 64",
    ),
    Refused(
        "metadata-long-value",
        {"metadata": {"team": "v" * 513}},
        "metadata.team",
        "'metadata.team' is 513 characters long; the limit is 512",
    ),
    Refused(
        "safety-identifier-long",
        {"safety_identifier": "h" * 129},
        "safety_identifier",
        "'safety_identifier' is 129 characters long; the limit is 128",
    ),
]


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    embedder = (
        "{name: embedder, kind: openai_embeddings, "
        f'settings: {{base_url: "{upstream[1]}/v1", model: upstream-embedder}}}}'
    )
    with gateway_for(
        remote_team("validation", upstream[1], embedder, "{name: calculator, kind: calculator}"),
        tmp_path_factory.mktemp("validation"),
    ) as served:
        yield served


@pytest.fixture
def client(gateway: tuple[str, Path]) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway[0] + "/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def refused_row(ledger: Path, request_id: str) -> Any:
    [row] = ledger_rows(ledger, f"correlation_id = '{request_id}'")
    return row


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_the_sdk_gets_a_short_400_naming_the_field(
    case: Refused, client: OpenAI, gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    request_id = f"req_sdk_{case.id}"
    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(
            model="remote",
            messages=[{"role": "user", "content": "Say hello."}],
            extra_body=case.fields,
            extra_headers={"x-request-id": request_id},
        )
    assert caught.value.body == {
        "message": case.message,
        "type": "invalid_request_error",
        "param": case.param,
        "code": "invalid_request",
    }
    assert recorder.bodies == []
    row = refused_row(gateway[1], request_id)
    assert row["status"] == 400 and case.message in row["error"]


def test_an_empty_model_is_refused_on_every_endpoint(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    """Empty is no model name on any endpoint (it used to route as ``auto``)."""
    calls = {
        "chat": lambda: client.chat.completions.create(model="", messages=[HELLO[0]]),  # type: ignore[list-item]
        "embeddings": lambda: client.embeddings.create(model="", input="hello"),
        "responses": lambda: client.responses.create(model="", input="hello"),
        "completions": lambda: client.completions.create(model="", prompt="hello"),
    }
    for name, call in calls.items():
        with pytest.raises(BadRequestError) as caught:
            call()
        assert caught.value.body["param"] == "model", name  # type: ignore[index]
        assert caught.value.body["message"] == f"'model' must not be empty: {MODEL}", name  # type: ignore[index]
    assert recorder.bodies == []


def post(url: str, body: bytes, request_id: str, **headers: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json", "x-request-id": request_id, **headers},
    )


def test_a_gzip_body_is_decoded(gateway: tuple[str, Path], recorder: RecordingUpstream) -> None:
    body = {"model": "remote", "messages": HELLO}
    response = post(
        gateway[0],
        gzip.compress(json.dumps(body).encode()),
        "req_gzip",
        **{"content-encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert recorder.bodies == [{**body, "model": "upstream-model"}]


@pytest.mark.parametrize(
    ("body", "encoding", "status", "message"),
    [
        (
            b"{}",
            "br",
            415,
            "Content-Encoding 'br' is not supported; send the body uncompressed or as "
            "'identity' or 'gzip'",
        ),
        (
            b"not gzip at all",
            "gzip",
            400,
            "request body is not valid gzip (Content-Encoding: gzip): "
            "Error -3 while decompressing data: incorrect header check",
        ),
        (
            gzip.compress(b" " * 2_000_000),  # about 2 KB that would be 2 MB
            "gzip",
            413,
            "request body exceeds the limit of 1048576 bytes once gunzipped",
        ),
    ],
    ids=["brotli", "not-gzip", "gzip-bomb"],
)
def test_an_encoding_the_gateway_cannot_read_is_named(
    gateway: tuple[str, Path],
    recorder: RecordingUpstream,
    body: bytes,
    encoding: str,
    status: int,
    message: str,
) -> None:
    request_id = f"req_encoding_{status}"
    response = post(gateway[0], body, request_id, **{"content-encoding": encoding})
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["message"], error["param"]) == (
        message,
        None if status == 413 else "content-encoding",  # a 413 is the body's, as unzipped
    )
    assert recorder.bodies == []
    assert refused_row(gateway[1], request_id)["status"] == status


def test_invalid_utf8_says_so_without_the_codec_internals(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    body = b'{"model": "remote", "messages": [{"role": "user", "content": "caf\xe9"}]}'
    response = post(gateway[0], body, "req_latin1")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "request body is not valid UTF-8 (byte 0xe9 at offset 65): send JSON as UTF-8 text, "
        "as is or gzipped with 'Content-Encoding: gzip'"
    )
    assert recorder.bodies == []
    assert refused_row(gateway[1], "req_latin1")["status"] == 400


UNKNOWN = (
    "'top_k' is not an OpenAI parameter: "
    "it needs a member that passes such fields on to its upstream"
)


def test_a_field_openai_does_not_define_goes_to_a_member_that_passes_it_on(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    """The documented policy: a provider's own field (the SDK's ``extra_body``) is
    forwarded as sent by a member with an upstream, as LiteLLM does."""
    reply = client.chat.completions.create(
        model="remote",
        messages=[{"role": "user", "content": "Say hello."}],
        extra_body={"top_k": 40},
    )
    assert reply.choices[0].message.content == "ok"
    assert recorder.bodies == [{"model": "upstream-model", "messages": HELLO, "top_k": 40}]


def test_a_tool_member_refuses_a_field_it_cannot_honour(
    client: OpenAI, gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.chat.completions.create(
            model="calculator",
            messages=[{"role": "user", "content": "2 + 2"}],
            extra_body={"top_k": 40},
            extra_headers={"x-request-id": "req_sdk_calculator_top_k"},
        )
    message = (
        f"{UNKNOWN}, which member 'calculator' does not support; members that support it: remote"
    )
    assert caught.value.body == {
        "message": message,
        "type": "invalid_request_error",
        "param": "top_k",
        "code": "invalid_request",
    }
    assert recorder.bodies == []
    row = refused_row(gateway[1], "req_sdk_calculator_top_k")
    assert row["status"] == 400 and message in row["error"]


@pytest.mark.parametrize(
    ("model", "after"),
    [
        ("local", ", which member 'local' does not support; no member supports it"),
        ("auto", "; no member can serve this request (lacking it: local, calculator, orders)"),
    ],
    ids=["local", "auto"],
)
def test_the_local_model_refuses_a_field_it_cannot_honour(
    gateway_url: str, gateway_ledger: Path, model: str, after: str
) -> None:
    """The default team (Gemma through llama.cpp, two tools) has no member that could
    pass ``top_k`` on: it is refused, naming the field, not dropped."""
    request_id = f"req_sdk_{model}_top_k"
    with (
        OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as sdk,
        pytest.raises(BadRequestError) as caught,
    ):
        sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Name a colour."}],
            extra_body={"top_k": 40},
            extra_headers={"x-request-id": request_id},
        )
    assert caught.value.body["param"] == "top_k"  # type: ignore[index]
    assert caught.value.body["message"] == UNKNOWN + after  # type: ignore[index]
    assert refused_row(gateway_ledger, request_id)["status"] == 400
