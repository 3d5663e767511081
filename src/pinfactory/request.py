"""The request as it flows through the pipeline, apart from any wire format."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool", "developer"]


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
    unit: str = "default"
    user: str = ""
    tags: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    request_id: str = field(default_factory=lambda: new_request_id())

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
    """96 random bits, as before from uuid4, but without a getrandom() syscall per request:
    ids only need to be unique (the random module is seeded from the OS, and reseeded in
    forked workers), not secret."""
    return f"req_{random.getrandbits(96):024x}"


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
