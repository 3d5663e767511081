"""``/v1/responses`` through a real gateway to a recording upstream, with the official
SDK's ``client.responses.create``, ``.stream``, ``.parse`` and ``.retrieve``: the chat
payload the upstream receives, the Response the client gets, the reference's event
sequence, tool round trips and ``previous_response_id`` from the ledger's store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from openai import OpenAI
from pydantic import BaseModel

from pinfactory.testing.recording import RecordingUpstream, Scripted, chunk, completion
from tests.conftest import ledger_rows
from tests.gateway.conftest import CALL, gateway_for, remote_team, tool_answer

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
CHAT_WEATHER = {
    "type": "function",
    "function": {k: v for k, v in WEATHER.items() if k != "type"},
}
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture(scope="module")
def gateway(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    with gateway_for(
        f"""\
name: responders
members:
  - {{name: remote, kind: openai_http,
      settings: {{base_url: "{upstream[1]}/v1", model: upstream-model}}}}
routing: {{kind: rules, fallback: remote}}
keys:
  - {{key: sk-sales-0001, unit: sales}}
  - {{key: sk-legal-0002, unit: legal}}
""",
        tmp_path_factory.mktemp("responses"),
    ) as served:
        yield served


def sdk(gateway: tuple[str, Path], key: str = "sk-sales-0001") -> OpenAI:
    return OpenAI(base_url=gateway[0] + "/v1", api_key=key, max_retries=0)


@pytest.fixture
def client(gateway: tuple[str, Path]) -> Iterator[OpenAI]:
    with sdk(gateway) as opened:
        yield opened


def test_text_with_instructions(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    reply = client.responses.create(
        model="auto",
        input="Say hello.",
        instructions="Be brief.",
        max_output_tokens=50,
        temperature=0.2,
        metadata={"ticket": "42"},
    )
    assert recorder.bodies == [
        {
            "model": "upstream-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say hello."},
            ],
            "temperature": 0.2,
            "metadata": {"ticket": "42"},
            "max_completion_tokens": 50,
        }
    ]
    assert reply.output_text == "ok" and reply.status == "completed"
    assert reply.id.startswith("resp_") and reply.model == "remote"
    assert (reply.instructions, reply.max_output_tokens, reply.temperature) == (
        "Be brief.",
        50,
        0.2,
    )
    assert reply.usage is not None and reply.usage.total_tokens == 6
    [message] = reply.output
    assert message.type == "message" and message.id.startswith("msg_")
    row = ledger_rows(gateway[1])[-1]
    assert (row["member"], row["status"], row["unit"]) == ("remote", 200, "sales")


def test_previous_response_id_continues_the_units_own_conversation(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    first = client.responses.create(model="auto", input="Say hello.", instructions="Be brief.")
    recorder.answer(Scripted(completion("hello again")))
    second = client.responses.create(
        model="auto", input="Once more.", previous_response_id=first.id
    )
    assert recorder.last["messages"] == [  # the old instructions are not carried over
        {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "Once more."},
    ]
    assert second.previous_response_id == first.id and second.output_text == "hello again"
    assert client.responses.retrieve(second.id).output_text == "hello again"

    sent = len(recorder.bodies)
    with sdk(gateway, "sk-legal-0002") as other, pytest.raises(openai.NotFoundError) as caught:
        other.responses.create(model="auto", input="Go on.", previous_response_id=second.id)
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert len(recorder.bodies) == sent  # refused before any member was called
    assert ledger_rows(gateway[1])[-1]["status"] == 404
    with sdk(gateway, "sk-legal-0002") as other, pytest.raises(openai.NotFoundError):
        other.responses.retrieve(second.id)


def test_store_false_keeps_nothing(client: OpenAI, recorder: RecordingUpstream) -> None:
    reply = client.responses.create(model="auto", input="Say hello.", store=False)
    assert reply.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="auto", input="Again.", previous_response_id=reply.id)
    assert len(recorder.bodies) == 1


def test_a_tool_round_trip(client: OpenAI, recorder: RecordingUpstream) -> None:
    recorder.answer(Scripted(tool_answer()))
    asked = client.responses.create(
        model="auto",
        input="Weather in Oslo?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="auto",
    )
    assert recorder.last["tools"] == [CHAT_WEATHER] and recorder.last["tool_choice"] == "auto"
    [call] = asked.output
    assert call.type == "function_call"
    assert (call.name, call.arguments, call.call_id) == ("get_weather", '{"city":"Oslo"}', "call_1")

    recorder.answer(Scripted(completion("18C and sunny in Oslo.")))
    answered = client.responses.create(
        model="auto",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C sunny"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert recorder.last["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
    ]
    assert answered.output_text == "18C and sunny in Oslo."


def test_a_stateless_round_trip_sends_the_items_back(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(tool_answer()))
    asked = client.responses.create(
        model="auto",
        input="Weather in Oslo?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        store=False,
    )
    assert recorder.last["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    items: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}, *asked.output]
    items.append({"type": "function_call_output", "call_id": "call_1", "output": "18C sunny"})
    client.responses.create(model="auto", input=items, tools=[WEATHER], store=False)  # type: ignore[list-item]
    assert recorder.last["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
    ]


class City(BaseModel):
    name: str
    population: int


def test_parse_sends_a_json_schema_and_fills_the_model(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    recorder.answer(Scripted(completion('{"name": "Oslo", "population": 709000}')))
    reply = client.responses.parse(model="auto", input="Describe Oslo.", text_format=City)
    assert reply.output_parsed == City(name="Oslo", population=709000)
    sent = recorder.last["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "City"
    assert sent["json_schema"]["schema"]["required"] == ["name", "population"]


def test_a_stream_follows_the_reference_event_sequence(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    with client.responses.stream(model="auto", input="Say hello.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.type for e in events] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["o", "k"]
    assert final.output_text == "ok" and final.status == "completed"
    assert recorder.last["stream"] is True
    assert client.responses.retrieve(final.id).output_text == "ok"  # stored before completed
    assert ledger_rows(gateway[1])[-1]["stream"] == 1


def test_streamed_tool_calls_become_function_call_events(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    start = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    pieces = [
        [{"index": 0, "delta": {"role": "assistant", "tool_calls": [start]}}],
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
    recorder.answer(Scripted(chunks=[chunk(p) for p in pieces]))
    with client.responses.stream(
        model="auto",
        input="Weather in Oslo?",
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    [call] = final.output
    assert call.type == "function_call"
    assert (call.name, call.arguments, call.call_id) == ("get_weather", '{"city":"Oslo"}', "call_1")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto", "input": "hi", "background": True}, "background"),
        ({"model": "auto", "input": "hi", "tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"model": "auto", "input": [{"type": "computer_call_output"}]}, "input.0.type"),
        ({"model": "auto", "input": "hi", "temperature": 3}, "temperature"),
        ({"model": "auto", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "auto", "input": [{"role": "user", "content": 5}]}, "input.0.content"),
        ({"model": "auto"}, "input"),
        ({"input": "hi"}, "model"),
        (
            {"model": "auto", "input": [{"type": "function_call_output", "output": "18C"}]},
            "input.0.call_id",
        ),
        (
            {
                "model": "auto",
                "input": "hi",
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "name": "get_time"},
            },
            "tool_choice",
        ),
        (
            {
                "model": "auto",
                "input": "hi",
                "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 5}}},
            },
            "text.format.schema",
        ),
    ],
)
def test_bad_bodies_are_a_400_naming_the_field_before_any_call(
    recorder: RecordingUpstream, gateway: tuple[str, Path], body: dict[str, Any], param: str
) -> None:
    before = len(ledger_rows(gateway[1]))
    response = httpx.post(
        gateway[0] + "/v1/responses",
        json=body,
        headers={"authorization": "Bearer sk-sales-0001"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param, response.json()
    assert recorder.bodies == []
    rows = ledger_rows(gateway[1])
    assert len(rows) == before + 1 and rows[-1]["status"] == 400


TOKEN = {
    "token": "ok",
    "logprob": -0.01,
    "bytes": [111, 107],
    "top_logprobs": [
        {"token": "ok", "logprob": -0.01, "bytes": [111, 107]},
        {"token": "no", "logprob": -4.6, "bytes": [110, 111]},
    ],
}


def test_top_logprobs_ask_for_logprobs_and_come_back_on_the_text(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    scored = completion("ok")
    scored["choices"][0]["logprobs"] = {"content": [TOKEN], "refusal": None}
    recorder.answer(Scripted(scored))
    reply = client.responses.create(model="auto", input="Say ok.", top_logprobs=2)
    assert (recorder.last["logprobs"], recorder.last["top_logprobs"]) == (True, 2)
    [part] = reply.output[0].content  # type: ignore[union-attr]
    assert [p.model_dump() for p in part.logprobs or []] == [TOKEN]  # type: ignore[union-attr]

    pieces = [
        [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "ok"},
                "logprobs": {"content": [TOKEN]},
            }
        ],
        [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    ]
    recorder.answer(Scripted(chunks=[chunk(p) for p in pieces]))
    with client.responses.stream(model="auto", input="Say ok.", top_logprobs=2) as stream:
        deltas = [e for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert [d.logprobs[0].model_dump() for d in deltas] == [TOKEN]
    [part] = final.output[0].content  # type: ignore[union-attr]
    assert [p.model_dump() for p in part.logprobs or []] == [TOKEN]  # type: ignore[union-attr]


def test_ids_that_cannot_be_ours_are_404_without_a_lookup(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    for weird in ("resp_\x00", "chatcmpl-1", "resp_" + "x" * 300):
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="auto", input="Go on.", previous_response_id=weird)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_%00x")
    assert recorder.bodies == []


LOOSE_WEATHER = {k: v for k, v in WEATHER.items() if k != "strict"}
PIXEL = "data:image/png;base64,iVBORw0KGgo="


def test_function_tools_without_strict_are_served_and_forwarded_as_sent(
    client: OpenAI, recorder: RecordingUpstream, gateway: tuple[str, Path]
) -> None:
    """The SDK's types mark ``strict`` and ``parameters`` required (nullable); the API
    does not: a tool without them reaches the upstream without them."""
    recorder.answer(Scripted(tool_answer()))
    bare = {"type": "function", "name": "ping"}
    reply = client.responses.create(
        model="auto",
        input="Weather in Oslo?",
        tools=[LOOSE_WEATHER, bare],  # type: ignore[list-item]
    )
    assert recorder.last["tools"] == [
        {"type": "function", "function": {k: v for k, v in LOOSE_WEATHER.items() if k != "type"}},
        {"type": "function", "function": {"name": "ping"}},
    ]
    assert [item.type for item in reply.output] == ["function_call"]

    recorder.answer(Scripted(tool_answer()))
    model = ChatOpenAI(
        model="auto",
        base_url=gateway[0] + "/v1",
        api_key="sk-sales-0001",  # type: ignore[arg-type]
        use_responses_api=True,
        max_retries=0,
    )
    said = model.bind_tools([LOOSE_WEATHER]).invoke("Weather in Oslo?")
    assert [call["name"] for call in said.tool_calls] == ["get_weather"]  # type: ignore[attr-defined]
    assert "strict" not in recorder.last["tools"][0]["function"]


def test_hand_written_items_need_only_what_the_api_needs(
    client: OpenAI, recorder: RecordingUpstream
) -> None:
    """An assistant turn without ``id``/``status``/``annotations`` and an image without
    ``detail`` are served; an image alone is content enough."""
    client.responses.create(
        model="auto",
        input=[
            {"role": "user", "content": "Hi."},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hello."}]},  # type: ignore[list-item]
            {"role": "user", "content": [{"type": "input_image", "image_url": PIXEL}]},  # type: ignore[list-item]
        ],
    )
    assert recorder.last["messages"] == [
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PIXEL}}]},
    ]


@pytest.fixture(scope="module")
def text_only(
    upstream: tuple[RecordingUpstream, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A team without vision, with a calculator that lacks JSON mode."""
    team = remote_team("readers", upstream[1], "{name: calculator, kind: calculator}").replace(
        "model: upstream-model}", "model: upstream-model}, capabilities: {vision: false}"
    )
    with gateway_for(team, tmp_path_factory.mktemp("text-only")) as served:
        yield served


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        (
            {
                "model": "auto",
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "image_url": PIXEL}]}
                ],
            },
            "input",
            "image input (vision)",
        ),
        (
            {"model": "calculator", "input": "1+1", "text": {"format": {"type": "json_object"}}},
            "text.format",
            "'text.format' needs JSON mode",
        ),
        (
            {"model": "calculator", "input": "1+1", "top_logprobs": 2},
            "top_logprobs",
            "'top_logprobs' needs log probabilities",
        ),
    ],
)
def test_capability_errors_name_the_responses_field(
    recorder: RecordingUpstream,
    text_only: tuple[str, Path],
    body: dict[str, Any],
    param: str,
    says: str,
) -> None:
    with sdk(text_only) as client, pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**body)
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert says in error["message"] and "response_format" not in error["message"], error
    assert recorder.bodies == []
    assert ledger_rows(text_only[1])[-1]["status"] == 400


def test_an_unknown_stored_response_names_no_body_field(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve("resp_nothing_here")
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] is None, error
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="auto", input="Go on.", previous_response_id="resp_gone")
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "previous_response_id"
