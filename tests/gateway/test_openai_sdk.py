"""The official openai SDK against the gateway over loopback: the default team, for real."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import ledger_rows


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_auto_routes_arithmetic_to_the_calculator(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is 17% of 2,340?"}]
    )
    reply = raw.parse()
    meta = (reply.model_extra or {})["pinfactory"]
    assert "397.8" in (reply.choices[0].message.content or "")
    assert raw.headers["x-pinfactory-member"] == "calculator" == meta["member"] == reply.model
    assert meta["reason"] == "rule 'arithmetic' matched"
    assert Decimal(raw.headers["x-pinfactory-cost-usd"]) == Decimal("0.000001")
    assert meta["cost_usd"] == pytest.approx(0.000001)
    assert meta["request_id"] == raw.headers["x-request-id"]
    assert meta["latency_ms"] > 0
    assert reply.usage is not None and reply.usage.prompt_tokens > 0


def test_order_questions_reach_the_orders_member(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What's the status of order 1042?"}]
    )
    assert (reply.model_extra or {})["pinfactory"]["member"] == "orders"
    assert "shipped" in (reply.choices[0].message.content or "")


def test_general_questions_go_to_the_local_model(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    meta = (reply.model_extra or {})["pinfactory"]
    assert meta["member"] == "local"
    assert "semantic route 'quick-facts'" in meta["reason"]  # the default team is hybrid
    assert "Paris" in (reply.choices[0].message.content or "")


def test_model_field_pins_a_member(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="calculator", messages=[{"role": "user", "content": "12 times 7"}]
    )
    meta = (reply.model_extra or {})["pinfactory"]
    assert meta["member"] == "calculator"
    assert meta["reason"] == "pinned by the request (model='calculator')"
    assert "84" in (reply.choices[0].message.content or "")


def test_streaming_sends_openai_chunks_and_a_final_pinfactory_block(client: OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=[{"role": "user", "content": "What is the capital of Italy?"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-pinfactory-member"] == "local"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Rome" in text
    final = chunks[-1]
    meta = (final.model_extra or {})["pinfactory"]
    assert meta["member"] == "local"
    # include_usage as the reference does it: a last chunk with no choices carries usage
    assert final.choices == [] and final.usage is not None and final.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")


def test_streaming_a_tool_member(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "what is (3.5 + 2) * 4?"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "22" in text


def test_models_lists_auto_and_every_enabled_member(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["auto", "local", "calculator", "orders"]


def test_healthz(gateway_url: str) -> None:
    body = httpx.get(gateway_url + "/healthz").json()
    assert body["status"] == "ok"
    assert body["members"] == ["local", "calculator", "orders"]


def test_every_answered_request_is_in_the_ledger(client: OpenAI, gateway_ledger: Path) -> None:
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Where is my order #1007?"}]
    )
    request_id = (reply.model_extra or {})["pinfactory"]["request_id"]
    rows = ledger_rows(gateway_ledger, f"request_id = '{request_id}'")
    assert len(rows) == 1
    assert rows[0]["member"] == "orders"
    assert rows[0]["status"] == 200
    assert rows[0]["reason"] == "rule 'order-status' matched"
    assert rows[0]["cost_nusd"] == 2000


def test_unknown_member_is_a_404_naming_what_exists(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])
    assert "unknown model 'gpt-17'" in str(caught.value)
    assert "calculator" in str(caught.value)
