"""``members.chunks.read_chunk``: a text chunk checked by its shape (a usage chunk too,
its usage by ``CompletionUsage``), anything else by ``ChatCompletionChunk``, and the two
always agree on what is a chunk."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletionChunk
from pydantic import ValidationError

from pinfactory.members.chunks import StreamErrorEvent, read_chunk


def chunk(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
    }
    body.update(changes)
    return body


def choice(**changes: Any) -> dict[str, Any]:
    return {"index": 0, "delta": {"content": "hi"}, "finish_reason": None, **changes}


TOOL_CALL = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}

# (body, read by its shape alone)
SHAPES: list[tuple[dict[str, Any], bool]] = [
    (chunk(), True),
    (chunk(choices=[]), True),
    (chunk(choices=[choice(delta={"role": "assistant", "content": ""})]), True),
    (chunk(choices=[choice(delta={}, finish_reason="stop")]), True),
    (chunk(choices=[choice(delta={"refusal": "no"})]), True),
    (chunk(choices=[choice(), choice(index=1)]), True),
    (chunk(system_fingerprint="fp", service_tier="default", extra_field=[1]), True),
    (chunk(choices=[choice(delta={"content": "x", "reasoning_content": "y"})]), True),
    (chunk(usage=None, choices=[choice(logprobs=None, delta={"tool_calls": None})]), True),
    (chunk(choices=[], usage=USAGE), True),
    (chunk(usage=USAGE), True),  # usage on a text chunk
    (chunk(choices=[], usage={**USAGE, "prompt_tokens_details": {"cached_tokens": 1}}), True),
    (chunk(choices=[], usage=USAGE, obfuscation="x"), True),
    (chunk(choices=[choice(logprobs={"content": []})], usage=USAGE), False),
    (chunk(choices=[choice(delta={"tool_calls": [TOOL_CALL]})]), False),
    (chunk(choices=[choice(logprobs={"content": []})]), False),
    (chunk(created=1.0), False),  # pydantic takes a whole float for an int
    (chunk(choices=[choice(index="0")]), False),  # and a numeric string
]
NOT_CHUNKS: list[dict[str, Any]] = [
    chunk(id=None),
    chunk(model=3),
    chunk(object="chat.completion"),
    chunk(choices=None),
    chunk(choices=[choice(finish_reason="done")]),
    chunk(choices=[choice(delta={"role": "robot"})]),
    chunk(choices=[choice(delta={"content": 5})]),
    chunk(choices=[choice(delta=None)]),
    chunk(choices=[{"delta": {"content": "x"}}]),  # no index
    chunk(service_tier="gold"),
    chunk(choices=[choice(delta={"tool_calls": [{"id": "no index"}]})]),
    chunk(choices=[], usage={"prompt_tokens": [1]}),
    chunk(choices=[], usage={**USAGE, "total_tokens": "many"}),
    chunk(usage=USAGE, choices=[choice(delta={"content": 5})]),
]


@pytest.mark.parametrize(("body", "by_shape"), SHAPES)
def test_a_chunk_is_read_as_the_upstream_sent_it(body: dict[str, Any], by_shape: bool) -> None:
    data = orjson.dumps(body)
    read = read_chunk(b" " + data + b"\n")
    assert read is not None
    got, typed, usage = read
    assert (typed is None) is by_shape
    reference = ChatCompletionChunk.model_validate_json(data).usage
    assert usage == reference  # the usage is read as the reference reads it, or absent
    if usage is not None:
        assert usage.total_tokens == USAGE["total_tokens"]
    coerced = body.get("created") == 1.0 and type(body["created"]) is float
    coerced = coerced or any(type(c.get("index")) is str for c in body["choices"])
    # what pydantic would have to coerce is read as it coerced it, the rest as sent
    assert got == (typed.model_dump(mode="json", exclude_unset=True) if coerced else body)


@pytest.mark.parametrize("body", NOT_CHUNKS)
def test_what_the_reference_refuses_is_refused(body: dict[str, Any]) -> None:
    data = orjson.dumps(body)
    with pytest.raises(ValidationError):
        ChatCompletionChunk.model_validate_json(data)
    with pytest.raises(ValidationError):
        read_chunk(data)


def test_an_error_event_and_garbage() -> None:
    with pytest.raises(StreamErrorEvent, match="overloaded"):
        read_chunk(b'{"error": {"message": "overloaded"}}')
    with pytest.raises(ValidationError, match="Invalid JSON"):
        read_chunk(b"{not json")
    assert read_chunk(b"[DONE]") is None
    assert read_chunk(b"  ") is None
