"""One ``data:`` payload of an upstream's chat stream, read once and checked.

Every payload is checked to be an OpenAI ``ChatCompletionChunk`` before anything of it
is relayed (a garbled stream is a 502). Most chunks of a stream are text: an id, the
model, choices whose delta carries ``role``, ``content`` or ``refusal``, perhaps a
``finish_reason``. Such a chunk is parsed once with orjson and checked field by field
against what ``ChatCompletionChunk`` accepts for it as it is (exact JSON types; the
literals, such as finish reasons and roles, read from openai's own types), every other
field the type declares (and any it declares in a later version of openai) being absent
or null. A chunk that also carries ``usage`` (the usage chunk that ends a stream asked
for with ``include_usage``, or a text chunk an upstream puts it on) is read the same way,
its usage validated alone by ``CompletionUsage``. Any other chunk (tool-call deltas,
logprobs, audio, a value pydantic would have to coerce) is validated by
``ChatCompletionChunk`` itself. Either way the gateway relays the upstream's own JSON,
and the fields it reads have the types the chunk type gives them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, get_args

import orjson
from openai.types.chat.chat_completion_chunk import ChatCompletionChunk, Choice, ChoiceDelta
from openai.types.completion_usage import CompletionUsage
from pydantic import ValidationError


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
_TOP_OTHER = frozenset(ChatCompletionChunk.model_fields) - _TOP_READ
_TOP_OTHER_BUT_USAGE = _TOP_OTHER - {"usage"}
_CHOICE_OTHER = frozenset(Choice.model_fields) - {"delta", "index", "finish_reason"}
_DELTA_OTHER = frozenset(ChoiceDelta.model_fields) - {"content", "refusal", "role"}


def _fits(body: object, *, whole: bool, others: frozenset[str] = _TOP_OTHER) -> bool:
    """Whether the fields the gateway reads (and relays around) have the JSON types
    ``ChatCompletionChunk`` gives them; with ``whole``, also whether every other field
    it declares (of the chunk itself: ``others``) is absent or null, so that the chunk
    needs no other check.

    Written out field by field, without helper calls: it runs for every chunk relayed."""
    if type(body) is not dict:
        return False
    fingerprint, obfuscation = body.get("system_fingerprint"), body.get("obfuscation")
    tier = body.get("service_tier")
    if not (
        type(body.get("id")) is str
        and type(body.get("created")) is int
        and type(body.get("model")) is str
        and body.get("object") == "chat.completion.chunk"
        and type(body.get("choices")) is list
        and (fingerprint is None or type(fingerprint) is str)
        and (obfuscation is None or type(obfuscation) is str)
        and (tier is None or tier in _TIERS)
    ):
        return False
    if whole and not (others.isdisjoint(body) or _nulls(body, others)):
        return False
    for choice in body["choices"]:
        if type(choice) is not dict or type(choice.get("index")) is not int:
            return False
        finish, delta = choice.get("finish_reason"), choice.get("delta")
        if (finish is not None and finish not in _FINISH) or type(delta) is not dict:
            return False
        content, refusal, role = delta.get("content"), delta.get("refusal"), delta.get("role")
        if not (
            (content is None or type(content) is str)
            and (refusal is None or type(refusal) is str)
            and (role is None or role in _ROLES)
        ):
            return False
        if whole and not (
            (_CHOICE_OTHER.isdisjoint(choice) or _nulls(choice, _CHOICE_OTHER))
            and (_DELTA_OTHER.isdisjoint(delta) or _nulls(delta, _DELTA_OTHER))
        ):
            return False
    return True


def _nulls(body: dict[str, Any], names: frozenset[str]) -> bool:
    """Whether each of ``names`` that ``body`` has is null."""
    return all(body[name] is None for name in names.intersection(body))


class Chunk(NamedTuple):
    """One chunk as :func:`read_chunk` reads it."""

    body: dict[str, Any]
    """The chunk's JSON as the upstream sent it (whose read fields have their chunk types)."""
    typed: ChatCompletionChunk | None
    """The chunk validated by ``ChatCompletionChunk`` when it needed that; None for one
    the shape check passed."""
    usage: CompletionUsage | None
    """The usage it reports, validated; None when it reports none."""


def read_chunk(data: bytes) -> Chunk | None:
    """One SSE ``data:`` payload as a :class:`Chunk`; None for an empty payload and
    ``[DONE]``.

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
        return Chunk(body, None, None)
    usage = body.get("usage") if type(body) is dict else None
    if type(usage) is dict and _fits(body, whole=True, others=_TOP_OTHER_BUT_USAGE):
        try:
            return Chunk(body, None, CompletionUsage.model_validate(usage))
        except ValidationError:
            pass  # the whole chunk's validation says what is wrong, in its own words
    try:
        typed = ChatCompletionChunk.model_validate_json(data)
    except ValueError:
        if isinstance(body, Mapping) and body.get("error") is not None:
            raise StreamErrorEvent(_error(body)) from None
        raise
    if not _fits(body, whole=False):  # read as pydantic coerced it
        body = typed.model_dump(mode="json", exclude_unset=True)
    return Chunk(body, typed, typed.usage)


def _error(event: Mapping[str, Any]) -> str:
    """The message of an OpenAI-style ``{"error": {...}}`` event, or the event itself."""
    error = event.get("error")
    message = error.get("message") if isinstance(error, Mapping) else error
    return str(message)[:200]
