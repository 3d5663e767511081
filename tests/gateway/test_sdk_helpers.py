"""The official SDK's high-level helpers and LangChain's ChatOpenAI through the gateway.

``client.chat.completions.parse`` (structured output into a pydantic model),
``.stream`` (the SDK's own accumulation of streamed tool-call deltas), a tool round
trip, and LangChain's ``bind_tools``, ``with_structured_output`` and streaming with
usage, each against a gateway whose ``openai_http`` member points at a recording
upstream: the upstream must receive what the helper sent and the helper must get back
what the upstream answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from openai import OpenAI
from pydantic import BaseModel

from pinfactory.testing.recording import (
    RecordingUpstream,
    Scripted,
    chunk,
    completion,
    text_chunks,
)
from tests.gateway.conftest import CALL, gateway_for, tool_answer

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


class City(BaseModel):
    name: str
    population: int


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with gateway_for(
        f"""\
name: helpers
members:
  - {{name: remote, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
routing: {{kind: rules, fallback: remote}}
""",
        tmp_path_factory.mktemp("helpers"),
    ) as served:
        yield served[0] + "/v1"


@pytest.fixture
def client(gateway: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_parse_fills_a_pydantic_model(client: OpenAI, recorder: RecordingUpstream) -> None:
    recorder.answer(Scripted(completion('{"name": "Oslo", "population": 709000}')))
    reply = client.chat.completions.parse(
        model="auto",
        messages=[{"role": "user", "content": "Describe Oslo."}],
        response_format=City,
    )
    assert reply.choices[0].message.parsed == City(name="Oslo", population=709000)
    sent = recorder.last["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "City"
    assert sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["required"] == ["name", "population"]


def test_stream_helper_accumulates_tool_call_deltas(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    start = {"index": 0, "id": "call_1", "type": "function"}
    recorder.answer(
        Scripted(
            chunks=[
                chunk(
                    [
                        {
                            "index": 0,
                            "delta": {
                                "role": "assistant",
                                "tool_calls": [
                                    {**start, "function": {"name": "get_weather", "arguments": ""}}
                                ],
                            },
                        }
                    ]
                ),
                chunk(
                    [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]
                            },
                        }
                    ]
                ),
                chunk(
                    [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]
                            },
                        }
                    ]
                ),
                chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            ]
        )
    )
    with client.chat.completions.stream(
        model="auto",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in kinds
    assert "tool_calls.function.arguments.done" in kinds
    [call] = final.choices[0].message.tool_calls or []
    assert call.id == "call_1" and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments == '{"city":"Oslo"}'  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"
    assert recorder.last["tools"] == [WEATHER] and recorder.last["stream"] is True


def test_a_tool_round_trip_reaches_the_upstream_intact(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(tool_answer()))
    recorder.answer(Scripted(completion("It is 18C and sunny in Oslo.")))
    question = {"role": "user", "content": "Weather in Oslo?"}
    first = client.chat.completions.create(
        model="auto",
        messages=[question],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    assert first.choices[0].finish_reason == "tool_calls"
    history = [
        question,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C sunny"},
    ]
    second = client.chat.completions.create(
        model="auto",
        messages=history,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.choices[0].message.content == "It is 18C and sunny in Oslo."
    assert recorder.last["messages"] == [
        question,
        {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
    ]


def langchain(gateway: str, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=gateway,
        api_key="unused",
        model="auto",
        max_retries=0,
        **options,  # type: ignore[arg-type]
    )


def test_langchain_bind_tools_returns_the_tool_calls(
    gateway: str, recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(tool_answer()))

    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "18C"

    message = langchain(gateway).bind_tools([get_weather]).invoke("Weather in Oslo?")
    assert message.tool_calls == [  # type: ignore[attr-defined]
        {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_1", "type": "tool_call"}
    ]
    [tool] = recorder.last["tools"]
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["parameters"]["required"] == ["city"]


def test_langchain_with_structured_output(gateway: str, recorder: RecordingUpstream) -> None:
    recorder.answer(Scripted(completion(json.dumps({"name": "Oslo", "population": 709000}))))
    city = langchain(gateway).with_structured_output(City).invoke("Describe Oslo.")
    assert city == City(name="Oslo", population=709000)
    assert recorder.last["response_format"]["json_schema"]["name"] == "City"


def test_langchain_streams_with_usage(gateway: str, recorder: RecordingUpstream) -> None:
    recorder.answer(Scripted(chunks=text_chunks(["Hel", "lo"], usage=True)))
    chunks = list(langchain(gateway, stream_usage=True).stream("Say hello."))
    total = chunks[0]
    for piece in chunks[1:]:
        total = total + piece
    assert isinstance(total, AIMessageChunk)
    assert total.content == "Hello"
    assert total.usage_metadata is not None
    assert total.usage_metadata["input_tokens"] == 5 and total.usage_metadata["output_tokens"] == 1
    assert recorder.last["stream_options"] == {"include_usage": True}
