"""``/v1/embeddings`` through a real gateway: the packaged MiniLM locally, an
OpenAI-compatible endpoint (a recording upstream) remotely, with the official SDK and
LangChain's ``OpenAIEmbeddings`` as clients; routed, costed, budgeted and recorded."""

from __future__ import annotations

import base64
import json
from array import array
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings
from openai import OpenAI

from pinfactory.embeddings import get_encoder
from pinfactory.testing.recording import RecordingUpstream, Scripted
from tests.conftest import ledger_rows
from tests.gateway.conftest import gateway_for


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    with gateway_for(
        f"""\
name: embedders
members:
  - {{name: chat, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
  - {{name: minilm, kind: embedding}}
  - {{name: remote-embed, kind: openai_embeddings, price: {{input_per_mtok: 100}},
      settings: {{base_url: "{upstream[1]}/v1", model: text-embedding-3-small}}}}
routing: {{kind: rules, fallback: chat}}
keys:
  - {{key: sk-rich-0001, unit: rich}}
  - {{key: sk-poor-0002, unit: poor}}
budgets:
  - {{unit: poor, period: day, max_spend_usd: 0.0000001, on_exhausted: refuse}}
""",
        tmp_path_factory.mktemp("embeddings"),
    ) as served:
        yield served


@pytest.fixture
def client(gateway: tuple[str, Path]) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway[0] + "/v1", api_key="sk-rich-0001", max_retries=0) as sdk:
        yield sdk


def post(gateway: tuple[str, Path], body: object, key: str = "sk-rich-0001") -> httpx.Response:
    return httpx.post(
        gateway[0] + "/v1/embeddings",
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )


def test_the_sdk_gets_minilm_vectors_from_the_local_member(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    texts = ["Where is my order?", "Track my parcel", "The capital of France is Paris"]
    reply = client.embeddings.create(model="minilm", input=texts)  # the SDK asks for base64
    vectors = np.array([item.embedding for item in reply.data], dtype=np.float32)
    expected = get_encoder("minilm").encode(texts)
    assert vectors.shape == (3, 384)
    assert np.array_equal(vectors, expected)  # float32 through base64: bit for bit
    assert [item.index for item in reply.data] == [0, 1, 2]
    assert reply.model == "minilm"
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # orders are alike, Paris is not
    assert recorder.bodies == []  # nothing went upstream
    row = ledger_rows(gateway[1])[-1]
    assert (row["member"], row["status"], row["unit"]) == ("minilm", 200, "rich")
    assert row["input_tokens"] == reply.usage.prompt_tokens > 0


def test_floats_when_asked_and_auto_takes_the_cheapest(gateway: tuple[str, Path]) -> None:
    response = post(gateway, {"model": "auto", "input": "hello", "encoding_format": "float"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "minilm"  # free beats priced
    assert body["pinfactory"]["reason"] == "the cheapest member serving embeddings"
    [item] = body["data"]
    assert item["object"] == "embedding" and len(item["embedding"]) == 384
    assert np.allclose(item["embedding"], get_encoder("minilm").encode(["hello"])[0])


def test_remote_member_relays_the_body_and_its_answer(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    reply = client.embeddings.create(
        model="remote-embed", input=["ab", "cde"], dimensions=2, encoding_format="float"
    )
    assert recorder.last == {
        "model": "text-embedding-3-small",
        "input": ["ab", "cde"],
        "dimensions": 2,
        "encoding_format": "float",
    }
    assert [item.embedding for item in reply.data] == [[0.0, 0.5], [1.0, 0.5]]
    assert reply.usage.prompt_tokens == 5  # the upstream's count
    row = ledger_rows(gateway[1])[-1]
    assert row["member"] == "remote-embed" and row["input_tokens"] == 5
    assert row["cost_nusd"] == 5 * 100 * 1000  # 5 tokens at $100 per million, in nano-USD


def test_a_field_openai_does_not_define_reaches_the_upstream_as_sent(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    client.embeddings.create(model="auto", input="ab", extra_body={"input_type": "query"})
    assert recorder.last["input_type"] == "query"  # auto chose the member that passes it on


def test_base64_from_the_upstream_reaches_the_client_bit_for_bit(
    recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    response = post(gateway, {"model": "remote-embed", "input": "abc", "encoding_format": "base64"})
    assert recorder.last["encoding_format"] == "base64"
    values = array("f")
    values.frombytes(base64.b64decode(response.json()["data"][0]["embedding"]))
    assert values.tolist() == [0.0, 0.5, -0.25]


def test_token_arrays_go_to_a_member_that_takes_them(
    recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    response = post(gateway, {"model": "auto", "input": [[101, 2023], [7592]]})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "remote-embed"  # minilm takes text only
    assert recorder.last["input"] == [[101, 2023], [7592]]
    assert "lacks" not in response.json()["pinfactory"]["reason"]


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"model": "minilm", "input": [[1, 2]]}, "input", "token-array input"),
        ({"model": "minilm", "input": "hi", "dimensions": 64}, "dimensions", "remote-embed"),
        ({"model": "chat", "input": "hi"}, "model", "needs embeddings"),
        ({"model": "minilm", "input": ""}, "input", "must not be empty"),
        ({"model": "minilm", "input": []}, "input", "must not be empty"),
        ({"model": "minilm", "input": ["a", ""]}, "input.1", "must not be empty"),
        ({"model": "minilm", "input": [1.5]}, "input.0", "valid"),
        ({"model": "minilm"}, "input", "required"),
        ({"input": "hi"}, "model", "required"),
        ({"model": "minilm", "input": "hi", "encoding_format": "hex"}, "encoding_format", "base64"),
        ({"model": "remote-embed", "input": "hi", "dimensions": 0}, "dimensions", "at least 1"),
        ({"model": "minilm", "input": ["x"] * 2049}, "input", "limit is 2048"),
        ({"model": "remote-embed", "input": [1, -5]}, "input.1", "at least 0 (got -5)"),
        ({"model": "auto", "input": [[1, 2], [3, -5]]}, "input.1.1", "token id"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_before_any_member_runs(
    recorder: RecordingUpstream,
    gateway: tuple[str, Path],
    body: dict[str, object],
    param: str,
    says: str,
) -> None:
    before = len(ledger_rows(gateway[1]))
    response = post(gateway, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and says in error["message"], error
    assert recorder.bodies == []
    rows = ledger_rows(gateway[1])
    assert len(rows) == before + 1 and rows[-1]["status"] == 400
    assert rows[-1]["input_tokens"] == 0 and rows[-1]["cost_nusd"] == 0


def test_a_chat_request_never_reaches_an_embedding_member(gateway: tuple[str, Path]) -> None:
    response = httpx.post(
        gateway[0] + "/v1/chat/completions",
        json={"model": "minilm", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": "Bearer sk-rich-0001"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert "chat completions" in response.json()["error"]["message"]


def test_a_budget_refuses_before_the_upstream_is_called(
    recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    response = post(gateway, {"model": "remote-embed", "input": "x" * 400}, key="sk-poor-0002")
    assert response.status_code == 429, response.text
    assert recorder.bodies == []
    row = ledger_rows(gateway[1])[-1]
    assert (row["unit"], row["status"]) == ("poor", 429)


def test_an_upstream_failure_is_a_502_booked_in_the_ledger(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    recorder.answer(Scripted({"object": "list", "data": "garbage"}))
    with pytest.raises(openai.APIStatusError) as caught:
        client.embeddings.create(model="remote-embed", input="hi")
    assert caught.value.status_code == 502
    assert "remote-embed" in json.dumps(caught.value.body)
    row = ledger_rows(gateway[1])[-1]
    assert (row["member"], row["status"]) == ("remote-embed", 502)


def test_langchain_openai_embeddings(gateway: tuple[str, Path]) -> None:
    embedder = OpenAIEmbeddings(
        model="minilm",
        base_url=gateway[0] + "/v1",
        api_key="sk-rich-0001",  # type: ignore[arg-type]
        check_embedding_ctx_length=False,  # its tiktoken path would fetch an encoding
        max_retries=0,
    )
    documents = embedder.embed_documents(["first passage", "second passage"])
    query = embedder.embed_query("first passage")
    assert len(documents) == 2 and len(documents[0]) == 384
    assert np.allclose(query, documents[0], atol=1e-6)
    assert not np.allclose(documents[0], documents[1])


@pytest.mark.parametrize(
    ("given", "param", "size"),
    [
        ("word " * 200_000, "input", "more than 254 tokens"),
        (["The sky is blue.", "word " * 300], "input.1", "300 tokens"),
    ],
)
def test_an_input_longer_than_minilm_reads_is_refused_not_cut(
    client: OpenAI, gateway: tuple[str, Path], given: str | list[str], param: str, size: str
) -> None:
    """MiniLM reads 256 word-pieces ([CLS] and [SEP] among them): a longer input would be
    embedded by its start alone, and billed whole."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="minilm", input=given)
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert error["code"] == "context_length_exceeded", error
    assert f"is {size}" in error["message"] and "at most 254 tokens" in error["message"]
    row = ledger_rows(gateway[1])[-1]
    assert (row["status"], row["input_tokens"], row["cost_nusd"]) == (400, 0, 0)


def test_minilm_bills_the_word_pieces_it_embedded(client: OpenAI) -> None:
    fits = "word " * 254
    reply = client.embeddings.create(model="minilm", input=["The sky is blue.", fits])
    assert reply.usage.prompt_tokens == 5 + 254  # the tokenizer's count, not an estimate


@pytest.fixture(scope="module")
def local_only(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """Embeddings by MiniLM alone: no token arrays, no chosen dimensions."""
    with gateway_for(
        f"""\
name: local-embedders
members:
  - {{name: chat, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
  - {{name: minilm, kind: embedding}}
routing: {{kind: rules, fallback: chat}}
""",
        tmp_path_factory.mktemp("local-embeddings"),
    ) as served:
        yield served


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"model": "auto", "input": "x", "dimensions": 64}, "dimensions", "dimensions"),
        ({"model": "auto", "input": [1, 2]}, "input", "token-array input"),
        ({"model": "auto", "input": [[1, 2]], "dimensions": 64}, "input", "token-array"),
        ({"model": "auto", "input": "x", "top_k": 3}, "top_k", "passes such fields on"),
        ({"model": "minilm", "input": "x", "top_k": 3}, "top_k", "not an OpenAI parameter"),
    ],
)
def test_auto_names_the_field_no_member_serves(
    local_only: tuple[str, Path], body: dict[str, object], param: str, says: str
) -> None:
    response = post(local_only, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and says in error["message"], error
    assert "minilm" in error["message"], error
    assert ledger_rows(local_only[1])[-1]["status"] == 400
