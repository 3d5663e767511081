"""One ``data:`` payload of an upstream's chat stream, read once and checked.

Every payload is checked to be an OpenAI ``ChatCompletionChunk`` before anything of it
is relayed (a garbled stream is a 502). Most chunks of a stream are text: an id, the
model, choices whose delta carries ``role``, ``content`` or ``refusal``, perhaps a
``finish_reason``. Such a chunk is parsed once with orjson and checked field by field
against what ``ChatCompletionChunk`` accepts for it as it is (exact JSON types; the
literals, such as finish reasons and roles, read from openai's own types), every other
field the type declares (and any it declares in a later version of openai) being absent
or null. Any other chunk (tool-call deltas, logprobs, usage, audio, a value pydantic
would have to coerce) is validated by ``ChatCompletionChunk`` itself. Either way the
gateway relays the upstream's own JSON, and the fields it reads have the types the
chunk type gives them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

import orjson
from openai.types.chat.chat_completion_chunk import ChatCompletionChunk, Choice, ChoiceDelta


class StreamErrorEvent(ValueError):
    """An OpenAI-style ``{"error": {...}}`` event inside a 200 stream."""


def _literals(annotation: Any) -> frozenset[str]:
    """The values of an ``Optional[Literal[...]]``."""
    return frozenset(value for arg in get_args(annotation) for value in get_args(arg))


_FINISH = _literals(Choice.model_fields["finish_reason"].annotation)
_ROLES = _literals(ChoiceDelta.model_fields["role"].annotation)
_TIERS = _literals(ChatCompletionChunk.model_fields["service_tier"].annotation)
_TOP_READ = {"id", "choices", "created", "model", "object", "service_tier"}
_TOP_READ |= {"system_fingerprint", "obfuscation"}
# the fields of each type this module does not check: a text chunk leaves them out
_TOP_OTHER = tuple(sorted(set(ChatCompletionChunk.model_fields) - _TOP_READ))
_CHOICE_OTHER = tuple(sorted(set(Choice.model_fields) - {"delta", "index", "finish_reason"}))
_DELTA_OTHER = tuple(sorted(set(ChoiceDelta.model_fields) - {"content", "refusal", "role"}))


def _optional_str(value: object) -> bool:
    return value is None or type(value) is str


def _fits(body: object, *, whole: bool) -> bool:
    """Whether the fields the gateway reads (and relays around) have the JSON types
    ``ChatCompletionChunk`` gives them; with ``whole``, also whether every other field
    it declares is absent or null, so that the chunk needs no other check."""
    if type(body) is not dict:
        return False
    if not (
        type(body.get("id")) is str
        and type(body.get("created")) is int
        and type(body.get("model")) is str
        and body.get("object") == "chat.completion.chunk"
        and type(body.get("choices")) is list
        and _optional_str(body.get("system_fingerprint"))
        and _optional_str(body.get("obfuscation"))
        and (body.get("service_tier") is None or body["service_tier"] in _TIERS)
    ):
        return False
    if whole and any(body.get(name) is not None for name in _TOP_OTHER):
        return False
    for choice in body["choices"]:
        if type(choice) is not dict or type(choice.get("index")) is not int:
            return False
        finish, delta = choice.get("finish_reason"), choice.get("delta")
        if (finish is not None and finish not in _FINISH) or type(delta) is not dict:
            return False
        if not (_optional_str(delta.get("content")) and _optional_str(delta.get("refusal"))):
            return False
        if delta.get("role") is not None and delta["role"] not in _ROLES:
            return False
        if whole and (
            any(choice.get(name) is not None for name in _CHOICE_OTHER)
            or any(delta.get(name) is not None for name in _DELTA_OTHER)
        ):
            return False
    return True


def read_chunk(data: bytes) -> tuple[dict[str, Any], ChatCompletionChunk | None] | None:
    """One SSE ``data:`` payload as ``(body, typed)``: ``body`` the chunk's JSON as the
    upstream sent it (whose read fields have their chunk types), ``typed`` the chunk
    validated by ``ChatCompletionChunk`` when it needed that (None for a text chunk the
    shape check passed). None for an empty payload and ``[DONE]``.

    Raises :class:`StreamErrorEvent` for an OpenAI-style error event, ``ValueError``
    (pydantic's ``ValidationError`` is one) when the data is not a chunk.
    """
    data = data.strip()
    if not data or data == b"[DONE]":
        return None
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    if _fits(body, whole=True):
        return body, None
    try:
        typed = ChatCompletionChunk.model_validate_json(data)
    except ValueError:
        if isinstance(body, Mapping) and body.get("error") is not None:
            raise StreamErrorEvent(_error(body)) from None
        raise
    if not _fits(body, whole=False):  # read as pydantic coerced it
        body = typed.model_dump(mode="json", exclude_unset=True)
    return body, typed


def _error(event: Mapping[str, Any]) -> str:
    """The message of an OpenAI-style ``{"error": {...}}`` event, or the event itself."""
    error = event.get("error")
    message = error.get("message") if isinstance(error, Mapping) else error
    return str(message)[:200]
