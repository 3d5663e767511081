"""A verifying team streams a whole, checked answer when verification may act on it: tool
calls must still reach the client as tool-call deltas (chat) and function-call events
(responses), not as text. When it may not (nothing to check), the stream is relayed as the
member sends it, and a client that leaves it is recorded as gone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from pinfactory.testing.faults import Fault, FaultPlan, fault_upstream
from pinfactory.testing.recording import RecordingUpstream, Scripted, completion, text_chunks
from tests.gateway.conftest import gateway_for, tool_answer
from tests.gateway.test_sdk_helpers import WEATHER
from tests.pipeline.conftest import wait_for_rows


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
verification: {{verifiers: ['tests.verify.test_plugins:NoPromises'], on_low_confidence: caveat,
                guards: {{redact_output_pii: true}}}}
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


@pytest.fixture(scope="module")
def relaying(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A team that verifies only answers with evidence: with none, nothing is checked."""
    with gateway_for(
        f"""\
name: grounded
members:
  - {{name: remote, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
routing: {{kind: rules, fallback: remote}}
verification: {{verifiers: [grounding], only_with_evidence: true}}
""",
        tmp_path_factory.mktemp("grounded"),
    ) as served:
        yield served


def _stream(url: str, **extra: object) -> list[str]:
    body = {"model": "auto", "messages": [{"role": "user", "content": "Hi?"}], "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, **extra}) as response:
        assert response.status_code == 200
        chunks = [
            json.loads(line.removeprefix("data: "))
            for line in response.iter_lines()
            if line.startswith("data: {")
        ]
    return [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]


def test_a_stream_with_nothing_to_check_is_relayed_as_it_comes(
    relaying: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(chunks=text_chunks(["Hel", "lo", "!"], usage=True)))
    said = _stream(relaying[0])
    assert recorder.last["stream"] is True  # asked as a stream, not whole
    assert [text for text in said if text] == ["Hel", "lo", "!"]


def test_a_stream_with_documents_is_checked_whole(
    relaying: tuple[str, Path], recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(completion("Oslo is in Norway.")))
    document = {"title": "atlas", "text": "Oslo is the capital of Norway."}
    said = _stream(relaying[0], documents=[document])
    assert "stream" not in recorder.last  # whole, to be grounded
    [whole] = [text for text in said if text]  # one delta: the checked answer (and any caveat)
    assert whole.startswith("Oslo is in Norway.")


def test_a_relayed_stream_the_client_leaves_is_recorded_as_gone(tmp_path: Path) -> None:
    with fault_upstream(FaultPlan(hold_s=5.0)) as faulty:  # one token, then quiet
        team = f"""\
name: grounded
members:
  - {{name: stall, kind: openai_http, settings: {{base_url: "{faulty.fault_url(Fault.STALL)}",
      model: m}}}}
routing: {{kind: rules, fallback: stall}}
verification: {{verifiers: [grounding], only_with_evidence: true}}
"""
        with (
            gateway_for(team, tmp_path) as (url, ledger),
            OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
        ):
            with client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "Count."}], stream=True
            ) as stream:
                first = next(iter(stream))  # relayed before the member finished; then leave
            assert first.choices[0].delta.content
            rows = wait_for_rows(str(ledger), 1)
    assert [(row["status"], row["member"]) for row in rows] == [(499, "stall")]
