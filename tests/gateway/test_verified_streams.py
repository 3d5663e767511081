"""A verifying team streams a whole, checked answer: tool calls must still reach the
client as tool-call deltas (chat) and function-call events (responses), not as text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from pinfactory.testing.recording import RecordingUpstream, Scripted, completion
from tests.gateway.conftest import gateway_for, tool_answer
from tests.gateway.test_sdk_helpers import WEATHER


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with gateway_for(
        f"""\
name: verified
members:
  - {{name: remote, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
routing: {{kind: rules, fallback: remote}}
verification: {{verifiers: ['tests.verify.test_plugins:NoPromises'], on_low_confidence: caveat}}
""",
        tmp_path_factory.mktemp("verified"),
    ) as served:
        yield served[0]


def test_a_verified_stream_relays_tool_calls_as_deltas(
    gateway: str, recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(tool_answer()))
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [WEATHER],
        "stream": True,
    }
    with httpx.stream("POST", gateway + "/v1/chat/completions", json=body) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert "stream" not in recorder.last  # verified: asked whole
    said = chunks[0]["choices"][0]["delta"]
    assert said["tool_calls"] == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    assert "content" not in said  # no text pretending to be the answer
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["pinfactory"]["member"] == "remote"
    assert all(c["id"] == chunks[0]["id"] and c["model"] == "remote" for c in chunks)


def test_the_sdk_stream_helper_gets_the_tool_call(
    gateway: str, recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(tool_answer()))
    with (
        OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0) as client,
        client.chat.completions.stream(
            model="auto",
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=[WEATHER],  # type: ignore[list-item]
        ) as stream,
    ):
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments == '{"city":"Oslo"}'  # type: ignore[union-attr]


def test_a_verified_responses_stream_carries_the_text_as_text_events(
    gateway: str, recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(completion("It works.")))
    with (
        OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0) as client,
        client.responses.stream(model="auto", input="Will it work?") as stream,
    ):
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["It works."]  # whole, once checked
    assert final.output_text == "It works." and final.status == "completed"
