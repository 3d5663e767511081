"""The request as it flows through the pipeline, apart from any wire format."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pinfactory.errors import RequestError

Role = Literal["system", "user", "assistant", "tool", "developer"]
Endpoint = Literal["chat", "embeddings"]
"""What a request asks for: an answer (chat completions, responses) or embeddings."""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``content`` is its text (text parts joined), what routers and
    verifiers read; ``wire`` is the message exactly as the client sent it (OpenAI shape:
    content parts, ``tool_calls``, ``tool_call_id``, ``name``), what members that speak
    OpenAI forward. None for messages made here (the CLI, the lab, tests)."""

    role: Role
    content: str
    wire: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A passage the caller sends along to ground the answer against."""

    text: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    """One chat request plus who sent it.

    ``model`` is ``"auto"`` (the router decides) or the name of a member.
    ``unit`` and ``user`` come from the caller's API key, never the body.
    ``request_id`` is always issued by pinfactory; ``correlation_id`` is the
    client's own ``X-Request-Id``, kept and returned but never used as a key.
    """

    messages: tuple[Message, ...]
    model: str = "auto"
    temperature: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    documents: tuple[Document, ...] = ()
    tools: tuple[Mapping[str, Any], ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    """Every other OpenAI parameter the client sent (``tools``, ``tool_choice``,
    ``response_format``, ``n``, ``seed``, ``top_p``, ``max_completion_tokens``,
    ``stream_options`` ...), validated against ``openai.types.chat`` and forwarded unchanged;
    ``model``, ``messages``, ``stream`` and pinfactory's own ``documents`` are not in it."""
    extra_params: tuple[str, ...] = ()
    """The names of the ``params`` that OpenAI's API does not define (a provider's own,
    like ``top_k``, as the SDK's ``extra_body`` sends them): only a member that passes
    them on to its upstream may answer (``Capabilities.extra_params``); any other is a
    400 naming the field, never a silent drop."""
    unit: str = "default"
    user: str = ""
    tags: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    request_id: str = field(default_factory=lambda: new_request_id())
    correlation_id: str | None = None
    cache: bool = True
    """False when the client sent ``"cache": false``: no cached answer, none stored."""
    endpoint: Endpoint = "chat"
    """``embeddings``: ``messages`` are the inputs (one user message each, token arrays
    as their ids), ``params`` the body's ``input``, ``encoding_format``, ``dimensions``."""

    @classmethod
    def from_text(cls, text: str, **kwargs: Any) -> Request:
        """A single-turn request; handy for the CLI, the lab and tests."""
        return cls(messages=(Message("user", text),), **kwargs)

    @property
    def text(self) -> str:
        """The last user message: what routers and verifiers look at."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return self.messages[-1].content if self.messages else ""

    @property
    def completion_id(self) -> str:
        """The OpenAI ``id`` of the answer (``chatcmpl-...``), derived from the request id."""
        return "chatcmpl-" + self.request_id.removeprefix("req_")

    @property
    def turns(self) -> int:
        return sum(1 for m in self.messages if m.role == "user")

    @property
    def prompt_tokens(self) -> int:
        return sum(estimate_tokens(m.content) for m in self.messages)


def new_request_id() -> str:
    """``req_`` + the time in Unix milliseconds (11 hex digits) + 84 random bits (21):
    unique, not secret, and in the order requests arrive, as UUIDv7 orders its ids.

    The order is for the ledger: its indexes on the request id (``requests`` and
    ``audit``) then grow at their right edge, where a batch's rows share a few pages,
    instead of touching one page anywhere in the index per row (random ids wrote three
    times the bytes per request, and took about a fifth more CPU, in ``durability:
    journal`` on a ledger of 50,000 requests; more as the index outgrows the cache).

    The random bits come from pinfactory's own generator, seeded from the OS and
    reseeded in forked workers, so nobody seeding the global ``random`` (a test
    framework, a plug-in) can make two requests share an id; and without a getrandom()
    syscall per request."""
    return f"req_{time.time_ns() // 1_000_000:011x}{_IDS.getrandbits(84):021x}"


_IDS = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_IDS.seed)


def estimate_tokens(text: str) -> int:
    """Token count estimate (about four characters a token) for members without a tokenizer."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def text_of(content: object) -> str:
    """The text of an OpenAI message ``content``: the string, or its text parts joined.

    Parts are joined with a space unless one side already has whitespace there, so
    ``["status of my", "order 1042?"]`` reads "status of my order 1042?"; image, audio
    and file parts carry no text.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    text = ""
    for part in content:
        piece = part.get("text") if isinstance(part, dict) else None
        if not isinstance(piece, str) or not piece:
            continue
        if text and not text[-1].isspace() and not piece[0].isspace():
            text += " "
        text += piece
    return text


def wire_message(message: Message) -> Mapping[str, Any]:
    """The message in OpenAI shape: as the client sent it, or rebuilt from role and text
    (and a message whose text the pipeline changed, by PII redaction, with that text)."""
    wire = message.wire
    if wire is None:
        return {"role": message.role, "content": message.content}
    if text_of(wire.get("content")) != message.content:
        return {**wire, "content": message.content}
    return wire


MAX_NAME = 256
"""Longest model, user, unit or tag the ledger stores."""
MAX_CORRELATION_ID = 128
"""Longest client ``X-Request-Id`` kept as the correlation id."""


def check_storable(request: Request) -> None:
    """Refuse input the ledger cannot store, before any member is called.

    Raises :class:`~pinfactory.errors.RequestError` (400) naming the field:
    a NUL byte anywhere in the text the ledger or the review queue keeps
    (PostgreSQL text cannot hold one), or a name past :data:`MAX_NAME`
    characters.
    """
    model, user, unit = request.model, request.user, request.unit
    if (  # most requests: one test of the three names, none of them to blame
        len(model) > MAX_NAME or len(user) > MAX_NAME or len(unit) > MAX_NAME
        or "\x00" in model or "\x00" in user or "\x00" in unit
    ):  # fmt: skip
        for name, value in (("model", model), ("user", user), ("unit", unit)):
            _check_text(name, value, MAX_NAME)
    for tag in request.tags:
        _check_text("metadata.tags", tag, MAX_NAME)
    for index, message in enumerate(request.messages):
        if "\x00" in message.content:
            _check_text(f"messages.{index}.content", message.content, None)
    for index, document in enumerate(request.documents):
        _check_text(f"documents.{index}.text", document.text, None)
        _check_text(f"documents.{index}.title", document.title, None)


def storable(text: str, limit: int = MAX_NAME) -> str:
    """``text`` as a failure row may keep it: NUL bytes replaced, cut to ``limit``."""
    return text.replace("\x00", "\ufffd")[:limit]


def correlation_id(value: str | None) -> str | None:
    """A client's ``X-Request-Id`` as kept: printable ASCII, at most
    :data:`MAX_CORRELATION_ID` characters; else a 400 naming the header."""
    if value is None or value == "":
        return None
    if len(value) > MAX_CORRELATION_ID or not (value.isascii() and value.isprintable()):
        raise _error(
            "x-request-id",
            f"header 'x-request-id' must be printable ASCII of at most {MAX_CORRELATION_ID} "
            f"characters (got {len(value)} characters)",
        )
    return value


def _check_text(name: str, value: str, limit: int | None) -> None:
    if "\x00" in value:
        raise _error(name, f"'{name}' contains a NUL byte (\\u0000), which cannot be stored")
    if limit is not None and len(value) > limit:
        raise _error(name, f"'{name}' is {len(value)} characters long; the limit is {limit}")


def _error(param: str, message: str) -> RequestError:
    return RequestError(message, param=param)
