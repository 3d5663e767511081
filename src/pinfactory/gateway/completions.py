"""``POST /v1/completions`` (OpenAI's legacy text completions) as a translation onto the
chat pipeline.

The body is checked against ``openai.types.completion_create_params`` (the SDK's own
request type), then becomes the chat request the pipeline routes, calls, verifies and
records like any other; every chat check (capabilities, value ranges) applies:

==========================  ==================================================
completions                 chat
==========================  ==================================================
``prompt`` (one string)     one ``user`` message
``max_tokens``              ``max_tokens`` (16 when absent, the reference's default)
``logprobs: N``             ``logprobs: true`` + ``top_logprobs: N``
``echo``                    the prompt written before each choice's text
``n``, ``stop``, ``seed``,  as they are
``temperature``, ...
==========================  ==================================================

Not served, each a 400 naming the field: several prompts or token-id prompts (one
string per request), ``suffix`` (insertion), ``best_of`` above 1.

The answer is an ``openai.types.Completion`` (``object: text_completion``); a stream is
``text_completion`` chunks, the finish in the last, with ``stream_options.include_usage``
a usage chunk with no choices after it (as the chat stream does), then ``[DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletionTokenLogprob
from openai.types.completion_create_params import CompletionCreateParamsBase
from pydantic import ValidationError

from pinfactory.errors import PinfactoryError, RequestError
from pinfactory.gateway.openai_types import params_adapter
from pinfactory.gateway.schema import (
    error_body,
    field_error,
    finish_reason,
    json_body,
    request_of,
    served_only,
    usage_body,
)
from pinfactory.gateway.sse import frame
from pinfactory.members.base import Completion, Delta
from pinfactory.outcome import Answer
from pinfactory.request import Request

DEFAULT_MAX_TOKENS = 16
"""The reference's ``max_tokens`` when a completions request sends none."""
_FORWARDED = (
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "seed",
    "stream",
    "stream_options",
)
SERVED = frozenset(CompletionCreateParamsBase.__annotations__) | {"stream"}


@dataclass(frozen=True, slots=True)
class CompletionsCall:
    """A parsed completions request: the chat request to run and what shapes the answer."""

    request: Request
    prompt: str
    echo: bool = False
    include_usage: bool = False

    @property
    def completion_id(self) -> str:
        return "cmpl-" + self.request.request_id.removeprefix("req_")


def parse_completions(body: bytes, **who: Any) -> CompletionsCall:
    """Check a completions body and translate it; a 400 naming the field for anything
    the reference refuses or this gateway does not serve. ``who``: ``unit``, ``user``,
    ``headers``, ``request_id``, ``correlation_id``, as :func:`request_of` takes them."""
    data = json_body(body)
    served_only(data, SERVED, "/v1/completions")
    try:
        params_adapter(CompletionCreateParamsBase).validate_python(
            {k: v for k, v in data.items() if k != "stream"}, strict=True
        )
    except ValidationError as exc:
        raise field_error(exc, data) from exc
    prompt = _prompt(data.get("prompt"))
    if data.get("suffix") is not None:
        raise RequestError(
            "'suffix' is not served: this gateway completes a prompt, it does not insert",
            param="suffix",
        )
    if data.get("best_of") not in (None, 1):
        raise RequestError(
            f"'best_of' must be 1 here (got {data['best_of']!r}): ask for 'n' choices instead",
            param="best_of",
        )
    if not isinstance(data.get("stream", False), bool | None):
        raise RequestError(
            f"'stream' must be true or false (got {data['stream']!r})", param="stream"
        )
    logprobs = data.get("logprobs")
    if logprobs is not None and not 0 <= logprobs <= 5:
        raise RequestError(f"'logprobs' must be between 0 and 5 (got {logprobs})", param="logprobs")
    chat: dict[str, Any] = {
        "model": data["model"],
        "messages": [{"role": "user", "content": prompt}],
    }
    chat.update({k: data[k] for k in _FORWARDED if data.get(k) is not None})
    chat.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    if logprobs is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = logprobs
    try:
        request, usage = request_of(chat, **who)
    except RequestError as exc:
        raise _renamed(exc) from exc
    return CompletionsCall(request, prompt, bool(data.get("echo")), usage)


def _prompt(prompt: object) -> str:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError(
            "'prompt' must be one string (or a list of one): this gateway serves one prompt "
            "per request, as text, not token ids",
            param="prompt",
        )
    if not prompt.strip():
        raise RequestError("'prompt' is empty: give the text to complete", param="prompt")
    return prompt


def _renamed(exc: RequestError) -> RequestError:
    """A chat check's error, naming the completions field."""
    param = exc.param or ""
    names = {"messages": "prompt", "top_logprobs": "logprobs", "logprobs": "logprobs"}
    head = param.partition(".")[0]
    if head not in names:
        return exc
    message = exc.message.replace(f"'{param}'", f"'{names[head]}'")
    return RequestError(message, param=names[head])


# -- the answer --------------------------------------------------------------------------


def completions_body(call: CompletionsCall, answer: Answer) -> dict[str, Any]:
    """The ``text_completion`` body: one choice per chat choice, its text after the
    prompt with ``echo``, its token logprobs in the legacy shape; the ``pinfactory`` block."""
    completion = answer.completion
    body: dict[str, Any] = {
        "id": call.completion_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": answer.decision.member,
        "choices": _choices(call, completion),
        "usage": usage_body(completion),
    }
    if completion.system_fingerprint is not None:
        body["system_fingerprint"] = completion.system_fingerprint
    body["pinfactory"] = answer.metadata()
    return body


def _choices(call: CompletionsCall, completion: Completion) -> list[dict[str, Any]]:
    head = call.prompt if call.echo else ""
    if not completion.choices:
        finish = finish_reason(completion.finish_reason)
        return [
            {"text": head + completion.text, "index": 0, "logprobs": None, "finish_reason": finish}
        ]
    choices = []
    for choice in completion.choices:
        text = completion.text if choice.index == 0 else (choice.message.content or "")
        tokens = choice.logprobs.content if choice.logprobs is not None else None
        if tokens is not None:
            text, tokens = aligned(text, tokens)
        choices.append(
            {
                "text": head + text,
                "index": choice.index,
                "logprobs": legacy_logprobs(tokens, len(head)) if tokens is not None else None,
                "finish_reason": finish_reason(choice.finish_reason),
            }
        )
    return choices


def aligned(
    text: str, tokens: Sequence[ChatCompletionTokenLogprob]
) -> tuple[str, list[ChatCompletionTokenLogprob]]:
    """The text and its tokens made to line up, so ``text_offset`` points into the text.

    A member may trim what its tokens spell (the local model strips the blank a
    continuation starts with, and the stop sequence it generated is a token but not
    text): the text then takes back the leading whitespace its tokens have, and tokens
    that start after the text ends are dropped. Text the tokens do not spell (with
    anything but whitespace before it) is left as it is."""
    spelled = "".join(t.token for t in tokens)
    if spelled == text:
        return text, list(tokens)
    start = spelled.find(text)
    if start < 0 or spelled[:start].strip():
        return text, list(tokens)
    end = start + len(text)
    kept: list[ChatCompletionTokenLogprob] = []
    at = 0
    for token in tokens:
        if at >= end and kept:
            break
        kept.append(token)
        at += len(token.token)
    return spelled[:end], kept


def legacy_logprobs(
    tokens: Sequence[ChatCompletionTokenLogprob], offset: int = 0
) -> dict[str, Any]:
    """Chat token logprobs in the completions shape: ``tokens``, ``token_logprobs``,
    ``top_logprobs`` (one ``{token: logprob}`` per token) and ``text_offset`` (each
    token's start in the choice's text, counted from ``offset``)."""
    offsets, at = [], offset
    for token in tokens:
        offsets.append(at)
        at += len(token.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{top.token: top.logprob for top in t.top_logprobs} for t in tokens],
        "text_offset": offsets,
    }


@dataclass(slots=True)
class CompletionChunks:
    """Turns the pipeline's stream events into ``text_completion`` chunk frames
    (:class:`~pinfactory.gateway.sse.StreamWriter`)."""

    call: CompletionsCall
    member: str
    ended: bytes = b"data: [DONE]\n\n"
    _finished: dict[int, str] = field(default_factory=dict)
    _offsets: dict[int, int] = field(default_factory=dict)

    def opening(self, first: object) -> list[bytes]:
        """With ``echo``, the prompt first, as the reference streams it."""
        del first  # every answer opens the same way
        return [self._chunk(0, self.call.prompt)] if self.call.echo else []

    def write(self, event: object) -> list[bytes]:
        if isinstance(event, str):
            return [self._chunk(0, event)] if event else []
        if not isinstance(event, Delta):
            return []
        frames = []
        for choice in event.chunk.choices:
            tokens = choice.logprobs.content if choice.logprobs is not None else None
            text = choice.delta.content or ""
            if tokens:
                text, tokens = aligned(text, tokens)
            if text or tokens:
                frames.append(self._chunk(choice.index, text, tokens))
            if choice.finish_reason is not None:
                self._finished[choice.index] = choice.finish_reason
        return frames

    async def close(self, answer: Answer) -> list[bytes]:
        finished = self._finished or {0: answer.completion.finish_reason}
        bodies = [self._body(i, "", finish_reason(r)) for i, r in sorted(finished.items())]
        if self.call.include_usage:
            last = self._body(0, "", None)
            last["choices"], last["usage"] = [], usage_body(answer.completion)
            bodies.append(last)
        bodies[-1]["pinfactory"] = answer.metadata()
        return [frame(body) for body in bodies]

    def failed(self, exc: PinfactoryError) -> bytes:
        return frame(error_body(exc.message, type_=exc.type, code=exc.code, param=exc.param))

    def _chunk(
        self, index: int, text: str, tokens: Sequence[ChatCompletionTokenLogprob] | None = None
    ) -> bytes:
        body = self._body(index, text, None)
        if tokens is not None:
            start = self._offsets.get(index, 0)
            body["choices"][0]["logprobs"] = legacy_logprobs(tokens, start)
        self._offsets[index] = self._offsets.get(index, 0) + len(text)
        return frame(body)

    def _body(self, index: int, text: str, finish: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.call.completion_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.member,
            "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}],
        }
        if self.call.include_usage:
            body["usage"] = None
        return body
