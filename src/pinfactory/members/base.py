"""The one interface every member of a team implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from openai.types.embedding import Embedding
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.request import Request, estimate_tokens

MILLION = Decimal(1_000_000)
DEFAULT_OUTPUT_CAP = 4096
"""Output tokens a request may produce when neither it nor its member sets a cap."""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Price(BaseModel):
    """What a member charges: per million input/output tokens and per call, in USD."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: Decimal = Field(default=Decimal(0), ge=0)
    output_per_mtok: Decimal = Field(default=Decimal(0), ge=0)
    per_call: Decimal = Field(default=Decimal(0), ge=0)

    def cost(self, usage: Usage) -> Decimal:
        return (
            self.per_call
            + self.input_per_mtok * usage.input_tokens / MILLION
            + self.output_per_mtok * usage.output_tokens / MILLION
        )

    def estimate(self, input_tokens: int, output_tokens: int = 256) -> Decimal:
        return self.cost(Usage(input_tokens, output_tokens))


@dataclass(frozen=True, slots=True)
class Completion:
    """A member's answer. ``refused`` marks an answer that declines the task.

    ``text`` is the first choice's text, what verifiers read. A member that speaks
    OpenAI also keeps what it was told, in OpenAI's own types, so the client gets
    every field: ``choices`` (all ``n`` of them, with tool calls, logprobs, refusal;
    empty for a plain one-text answer or a relayed stream), ``reported_usage`` (the
    usage block with its cached/reasoning token details), ``system_fingerprint``
    and ``service_tier``. An embedding member's answer carries its vectors in
    ``embeddings`` (OpenAI's ``Embedding``, one per input, in input order) and no text.
    """

    text: str
    usage: Usage
    cost_usd: Decimal
    model: str
    finish_reason: str = "stop"
    refused: bool = False
    choices: tuple[Choice, ...] = ()
    reported_usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    embeddings: tuple[Embedding, ...] = ()
    stop_sequence: str | None = None
    """The request's stop sequence that ended the answer, when the member can tell
    (``finish_reason`` is then ``stop``; Anthropic's Messages reports it)."""


@dataclass(slots=True)
class Delta:
    """One streamed chunk a member relays as it came (tool-call deltas, logprobs,
    refusal, several choices): ``body``, its JSON (as the upstream sent it, when relayed
    from one, checked to be a chunk by ``members.chunks``), and :attr:`chunk`, the same
    in OpenAI's chunk type. ``text`` is the content it adds to the first choice, what a
    verifier or a recorder accumulates. ``finish`` is true when the chunk ends a choice
    (it carries a ``finish_reason``)."""

    body: dict[str, Any]
    text: str = ""
    finish: bool = False
    more: bool = False
    """The member's next event is already here (it came in the same read, or the stream
    ended in that read and the completion is next): a relay may write this chunk
    together with what follows it. A member sets it only when that next event needs no
    waiting from the member (before yielding the delta; nothing changes one after);
    at the end of a stream the relay writes the chunks with the closing frames, once
    the answer is recorded."""
    typed: ChatCompletionChunk | None = field(default=None, repr=False, compare=False)
    """The chunk in OpenAI's type, once built (:attr:`chunk`)."""

    @classmethod
    def of(cls, chunk: ChatCompletionChunk, text: str = "", finish: bool = False) -> Delta:
        """The delta of a chunk built typed (an answer replayed as a stream)."""
        return cls(chunk.model_dump(mode="json", exclude_unset=True), text, finish, typed=chunk)

    @property
    def chunk(self) -> ChatCompletionChunk:
        """The chunk in OpenAI's type, validated from ``body`` on first use (by the
        writers that read its choices as objects: text completions, Messages and
        Responses events; the chat relay writes ``body``). ``body`` passed the chunk
        check, so this cannot fail."""
        if self.typed is None:
            self.typed = ChatCompletionChunk.model_validate(self.body)
        return self.typed


@dataclass(slots=True)
class Deltas:
    """Chunks a member relays that came in one read of its upstream, in order, as one
    stream event: every stage between the member and the client (the member call's
    booking, the pipeline, the relay) handles the run once, not once per chunk. ``more``
    as on :class:`Delta`: the member's next event is already here (the stream ended in
    the same read). A member yields one only for two chunks or more; :func:`each` gives
    a stage that works chunk by chunk the events one at a time."""

    deltas: list[Delta]
    more: bool = False


StreamEvent = str | Delta | Deltas | Completion
"""What a member's stream yields: text, relayed chunks (one, or a run of them), and
last its :class:`Completion`."""


def each(event: StreamEvent) -> Sequence[str | Delta | Completion]:
    """The events of ``event`` one at a time: a run's chunks, else the event itself."""
    return event.deltas if isinstance(event, Deltas) else (event,)


def replay(completion: Completion) -> list[str | Delta]:
    """A whole answer as stream events: its text, or, when it has choices (tool calls,
    refusal, logprobs, several choices), one chunk carrying each choice's message as a
    delta and one with their finish reasons. Used where an answer must be whole before
    it is sent (a verifying team), so a streaming client still gets tool-call deltas.
    The first choice's content is the settled ``text`` (verification may have changed it).
    """
    if not completion.choices:
        return [completion.text]
    said, finished = [], []
    for choice in completion.choices:
        message = choice.message
        delta: dict[str, Any] = {"role": "assistant"}
        content = completion.text if choice.index == 0 else message.content
        if content or not message.tool_calls:
            delta["content"] = content
        if message.refusal:
            delta["refusal"] = message.refusal
        if message.tool_calls:
            delta["tool_calls"] = [
                {"index": i, **call.model_dump(mode="json", exclude_unset=True)}
                for i, call in enumerate(message.tool_calls)
            ]
        logprobs = choice.logprobs.model_dump(mode="json") if choice.logprobs else None
        said.append({"index": choice.index, "delta": delta, "logprobs": logprobs})
        finished.append({"index": choice.index, "delta": {}, "finish_reason": choice.finish_reason})
    shell = {"id": "", "object": "chat.completion.chunk", "created": int(time.time())}
    shell["model"] = completion.model
    first = ChatCompletionChunk.model_validate({**shell, "choices": said})
    last = ChatCompletionChunk.model_validate({**shell, "choices": finished})
    return [Delta.of(first, completion.text), Delta.of(last, "", finish=True)]


class Capabilities(BaseModel):
    """What a member can serve. Routing sends a request only to members that can
    (``pinfactory.capabilities``); a team file may narrow or widen a kind's defaults
    per member (``capabilities: {vision: false}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tools: bool = Field(default=False, description="tools / tool_choice / tool messages")
    json_mode: bool = Field(default=False, description="response_format json_object")
    json_schema: bool = Field(default=False, description="response_format json_schema")
    vision: bool = Field(default=False, description="image_url content parts")
    n: bool = Field(default=False, description="more than one choice (n > 1)")
    logprobs: bool = Field(default=False, description="logprobs / top_logprobs")
    streaming: bool = Field(default=True, description="stream: true")
    max_context: int | None = Field(
        default=None, gt=0, description="prompt tokens it accepts (estimated); None: no limit"
    )
    chat: bool = Field(default=True, description="chat completions (and responses)")
    embeddings: bool = Field(default=False, description="/v1/embeddings")
    token_input: bool = Field(default=False, description="embeddings input as token arrays")
    dimensions: bool = Field(default=False, description="embeddings 'dimensions' (shortened)")
    extra_params: bool = Field(
        default=False,
        description="passes body fields OpenAI does not define (a provider's own, like "
        "top_k) on to its upstream",
    )

    @classmethod
    def common(cls, each: Iterable[Capabilities]) -> Capabilities:
        """What all of ``each`` serve (a member made of members serves no more)."""
        items = list(each)
        limits = [c.max_context for c in items if c.max_context is not None]
        flags = {
            name: all(getattr(c, name) for c in items)
            for name in cls.model_fields
            if name != "max_context"
        }
        return cls(**flags, max_context=min(limits) if limits else None)


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Member(ABC):
    """A team member: anything that turns a request into a completion.

    Subclasses set ``kind`` (the name used in team files) and ``Settings`` (a
    pydantic model validated when the team file loads). Constructors only
    store; ``open`` acquires clients or loads models; ``close`` releases them.
    """

    kind: ClassVar[str]
    Settings: ClassVar[type[BaseModel]] = NoSettings
    capabilities: Capabilities = Capabilities()
    """The kind's defaults; an instance built from a team file may override them."""
    cites: ClassVar[bool] = False
    """True when the member's completions carry the passages they cite (a
    ``GroundedCompletion``): a verifying team checks an answer against them, so it
    holds a stream whole when such a member may answer (``verify.stage``)."""
    books_itself: ClassVar[bool] = False
    """True for members made of members: their inner calls are booked, not the whole."""
    times_its_stream: ClassVar[bool] = False
    """True when the member's stream enforces its own time limits (the first token, the
    gap between chunks, the whole call: ``timeout_s`` unless its settings say otherwise),
    so the stream's consumer adds no timer per event (``members.calls.MemberStream``)."""
    times_its_calls: ClassVar[bool] = False
    """True when the member's ``complete`` enforces its own time limits (each attempt's
    answer within ``timeout_s`` unless its settings say otherwise, retries within the
    whole call's), so :func:`~pinfactory.members.calls.call_member` arms no timer of
    its own around it."""

    def __init__(
        self,
        name: str,
        settings: Any = None,
        *,
        price: Price | None = None,
        tier: str = "default",
        tags: tuple[str, ...] = (),
        timeout_s: float = 30.0,
        capabilities: Capabilities | None = None,
        max_output_tokens: int | None = None,
    ) -> None:
        self.name = name
        if capabilities is not None:
            self.capabilities = capabilities
        self.settings = settings if settings is not None else self.Settings()
        self.price = price or Price()
        self.tier = tier
        self.tags = tags
        self.timeout_s = timeout_s
        self.max_output_tokens = max_output_tokens

    def output_cap(self, request: Request) -> int:
        """The most output tokens a call may produce: the request's ``max_tokens``, held
        to the member's ``max_output_tokens`` (else :data:`DEFAULT_OUTPUT_CAP`)."""
        cap = self.max_output_tokens or DEFAULT_OUTPUT_CAP
        return min(request.max_tokens, cap) if request.max_tokens else cap

    def worst_case_usd(self, request: Request) -> Decimal:
        """What one call can cost at most: the prompt plus :meth:`output_cap` tokens (USD).

        Exact when the member enforces the cap (the pipeline sends it as
        ``max_tokens``); spend limits reserve this before the call.
        """
        return self.price.cost(Usage(request.prompt_tokens, self.output_cap(request)))

    async def open(self) -> None:
        """Acquire what the member needs (clients, models). Idempotent."""

    async def close(self) -> None:
        """Release what ``open`` acquired."""

    @abstractmethod
    async def complete(self, request: Request) -> Completion:
        """Answer the request."""

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        """Yield text deltas (or whole relayed chunks, :class:`Delta`, several that came
        together as one :class:`Deltas`), then the final :class:`Completion`.

        Members without native streaming send the whole answer as one delta.
        """
        completion = await self.complete(request)
        yield completion.text
        yield completion

    def local_completion(
        self, request: Request, text: str, *, model: str, refused: bool = False
    ) -> Completion:
        """An answer computed here, not by a model: tokens estimated, priced at ``price``."""
        usage = Usage(request.prompt_tokens, estimate_tokens(text))
        return Completion(
            text=text,
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=model,
            finish_reason="refused" if refused else "stop",
            refused=refused,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, tier={self.tier!r})"
