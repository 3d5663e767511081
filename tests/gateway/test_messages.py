"""``/v1/messages`` (Anthropic's Messages API) through a real gateway to a recording
upstream, with Anthropic's official SDK (``anthropic.Anthropic``) over loopback: the chat
payload the upstream receives, the ``message`` the client gets, the SDK's own stream
helper over the gateway's events (text and tool use), a tool round trip, errors in
Anthropic's shape with their statuses, and one ledger row per request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from pinfactory.testing.recording import (
    RecordingUpstream,
    Scripted,
    chunk,
    completion,
    text_chunks,
)
from tests.conftest import ledger_rows
from tests.gateway.conftest import CALL, gateway_for, tool_answer

KEY = "sk-sales-0001"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    with gateway_for(
        f"""\
name: messengers
members:
  - {{name: remote, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
  - {{name: calculator, kind: calculator}}
routing: {{kind: rules, fallback: remote}}
keys: [{{key: {KEY}, unit: sales}}]
""",
        tmp_path_factory.mktemp("messages"),
    ) as served:
        yield served


@pytest.fixture
def client(gateway: tuple[str, Path]) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway[0], api_key=KEY, max_retries=0) as opened:
        yield opened


def test_text_with_a_system_prompt(
    client: anthropic.Anthropic, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    reply = client.messages.create(
        model="auto",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "Say ok."}],
        stop_sequences=["\n\n"],
        metadata={"user_id": "u-7"},
    )
    assert recorder.bodies == [
        {
            "model": "upstream-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say ok."},
            ],
            "max_tokens": 64,
            "stop": ["\n\n"],
            "user": "u-7",
        }
    ]
    assert reply.type == "message" and reply.role == "assistant" and reply.id.startswith("msg_")
    assert reply.model == "remote" and reply.stop_reason == "end_turn"
    [block] = reply.content
    assert block.type == "text" and block.text == "ok"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (5, 1)
    row = ledger_rows(gateway[1])[-1]
    assert (row["member"], row["status"], row["unit"]) == ("remote", 200, "sales")


def test_a_tool_round_trip(client: anthropic.Anthropic, recorder: RecordingUpstream) -> None:
    recorder.answer(Scripted(tool_answer()))
    asked = client.messages.create(
        model="auto",
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    assert asked.stop_reason == "tool_use"
    [use] = asked.content
    assert use.type == "tool_use" and (use.id, use.name, use.input) == (
        "call_1",
        "get_weather",
        {"city": "Oslo"},
    )
    sent = recorder.last
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": WEATHER["description"],
            },
        }
    ]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)
    recorder.answer(Scripted(completion("18C and sunny in Oslo")))
    final = client.messages.create(
        model="auto",
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": asked.content},  # as the SDK's docs pass it back
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C sunny"},
                    {"type": "text", "text": "Say it nicely."},
                ],
            },
        ],
    )
    assert recorder.last["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
        {"role": "user", "content": [{"type": "text", "text": "Say it nicely."}]},
    ]
    assert final.content[0].type == "text"
    assert final.content[0].text == "18C and sunny in Oslo"


def test_the_sdk_stream_helper_reads_text_events(
    client: anthropic.Anthropic, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    recorder.answer(Scripted(chunks=text_chunks(["o", "k"], usage=False)))
    with client.messages.stream(
        model="auto", max_tokens=64, messages=[{"role": "user", "content": "Say ok."}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert recorder.last["stream"] is True and "stream_options" not in recorder.last
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("content_block_start") == 1 and kinds.count("content_block_stop") == 1
    assert final.content[0].type == "text" and final.content[0].text == "ok"
    assert final.stop_reason == "end_turn" and final.id.startswith("msg_")
    assert ledger_rows(gateway[1])[-1]["status"] == 200


def test_streamed_tool_call_deltas_become_a_tool_use_block(
    client: anthropic.Anthropic, recorder: RecordingUpstream
) -> None:
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather"}}
    first["function"]["arguments"] = '{"city":'
    rest = {"index": 0, "function": {"arguments": '"Oslo"}'}}
    recorder.answer(
        Scripted(
            chunks=[
                chunk([{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}}]),
                chunk([{"index": 0, "delta": {"tool_calls": [rest]}}]),
                chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            ]
        )
    )
    with client.messages.stream(
        model="auto",
        max_tokens=64,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    [use] = final.content
    assert use.type == "tool_use" and (use.id, use.name, use.input) == (
        "call_1",
        "get_weather",
        {"city": "Oslo"},
    )
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens", "required"),
        ({"max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens", ""),
        ({"max_tokens": 9, "messages": []}, "messages", ""),
        (
            {"max_tokens": 9, "messages": [{"role": "robot", "content": "hi"}]},
            "messages.0.role",
            "",
        ),
        (
            {"max_tokens": 9, "messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "messages.0.content.0.type",
            "",
        ),
        (
            {
                "max_tokens": 9,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [WEATHER],
                "tool_choice": {"type": "tool", "name": "get_time"},
            },
            "tool_choice",
            "get_time",
        ),
        (
            {
                "max_tokens": 9,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{**WEATHER, "input_schema": {"type": "nonsense"}}],
            },
            "tools.0.input_schema",
            "",
        ),
        (
            {"max_tokens": 9, "messages": [{"role": "user", "content": "hi"}], "top_k": 5},
            "top_k",
            "not served",
        ),
    ],
)
def test_bad_input_is_an_anthropic_shaped_400_naming_the_field_and_recorded(
    gateway: tuple[str, Path],
    recorder: RecordingUpstream,
    body: dict[str, object],
    param: str,
    says: str,
) -> None:
    before = len(ledger_rows(gateway[1]))
    response = httpx.post(
        gateway[0] + "/v1/messages", json={"model": "auto", **body}, headers={"x-api-key": KEY}
    )
    assert response.status_code == 400
    answer = response.json()
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param and says in answer["error"]["message"]
    assert recorder.bodies == []
    rows = ledger_rows(gateway[1])
    assert len(rows) == before + 1 and rows[-1]["status"] == 400


def test_the_sdk_raises_its_own_errors_with_anthropics_types(
    gateway: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    hello = [{"role": "user", "content": "hi"}]
    with (
        anthropic.Anthropic(base_url=gateway[0], api_key="sk-wrong", max_retries=0) as stranger,
        pytest.raises(anthropic.AuthenticationError) as denied,
    ):
        stranger.messages.create(model="auto", max_tokens=9, messages=hello)  # type: ignore[arg-type]
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    for _ in range(3):
        recorder.answer(Scripted({"error": {"message": "down"}}, status=500))
    with anthropic.Anthropic(base_url=gateway[0], api_key=KEY, max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError) as failed:
            client.messages.create(model="auto", max_tokens=9, messages=hello)  # type: ignore[arg-type]
        assert failed.value.status_code == 502
        assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="no-such-member", max_tokens=9, messages=hello)  # type: ignore[arg-type]


def test_a_stream_that_breaks_ends_with_an_error_event(
    client: anthropic.Anthropic, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    recorder.answer(
        Scripted(chunks=[chunk([{"index": 0, "delta": {"content": "o"}}]), {"error": "boom"}])
    )
    seen: list[str] = []
    stream = client.messages.stream(
        model="auto", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
    )
    with pytest.raises(anthropic.APIStatusError, match="boom"), stream as events:
        seen.extend(events.text_stream)  # the text before the error event, then the error
    assert seen == ["o"]
    assert ledger_rows(gateway[1])[-1]["status"] == 502


def test_a_keyless_text_member_answers_through_messages(
    client: anthropic.Anthropic, recorder: RecordingUpstream
) -> None:
    reply = client.messages.create(
        model="calculator", max_tokens=32, messages=[{"role": "user", "content": "2 + 3"}]
    )
    assert reply.model == "calculator" and reply.content[0].type == "text"
    assert "5" in reply.content[0].text
    assert recorder.bodies == []


def test_a_stop_sequence_met_by_the_local_model_is_reported(gateway_url: str) -> None:
    """The local member says which stop sequence ended its answer: Messages reports
    ``stop_reason: stop_sequence`` and the sequence, streamed or not; text that only
    began like one is sent."""
    asked = {
        "model": "local",
        "max_tokens": 30,
        "stop_sequences": ["zzz", "."],
        "messages": [{"role": "user", "content": "What colour is the sky on a clear day?"}],
    }
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as client:
        message = client.messages.create(**asked)  # type: ignore[call-overload]
        with client.messages.stream(**asked) as stream:  # type: ignore[arg-type]
            said = "".join(stream.text_stream)
            final = stream.get_final_message()
        free = client.messages.create(**{**asked, "stop_sequences": ["zzz"]})  # type: ignore[call-overload]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "."), message
    [block] = message.content
    assert block.type == "text" and block.text and "." not in block.text
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", ".")
    assert said.strip() == block.text  # (a stream keeps the blank the model began with)
    assert (free.stop_reason, free.stop_sequence) == ("end_turn", None), free
    assert free.content[0].text.startswith(block.text + ".")  # type: ignore[union-attr]
