"""How unsupported claims compound through multi-step chains.

A chain answers a question from evidence, then rewrites its previous output
``length - 1`` times against the same evidence; each step is one pipeline
request. The grounding checker labels every step's output *unsupported* when
one of its claims is not supported by the evidence.

- Per-step rates, each measured in isolation: ``p_answer`` (the first step on
  the question) and ``p_rewrite`` (a rewrite step fed the reference answer, a
  clean input).
- The chain-level rate at length ``L``: how often the output after step ``L``
  is unsupported (a chain of 4 steps gives lengths 1 to 4 by its prefixes).
- Independent composition predicts ``1 - (1 - p_answer)(1 - p_rewrite)^(L-1)``.
  :func:`fit_composition` fits ``k`` in ``1 - chain(L) = (1 - predicted(L))^k``
  over ``L >= 2``: ``k`` near 1 is independent composition, above 1 errors
  amplify (a drifted input breeds new errors), below 1 errors are caught
  (dropped or corrected on the way); a bootstrap over chains gives its 95%
  interval and the verdict.

With a verification gate the checker strips a step's unsupported sentences
before the next step reads them (:func:`gate`); each step's output is measured
before its gate, so the gate cannot grade itself.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pinfactory.pipeline import Pipeline
from pinfactory.request import Document, Message, Request
from pinfactory.verify.claims import split_sentences
from pinfactory.verify.grounding import GroundingChecker

Composition = Literal["independent", "amplify", "caught", "undetermined"]
REWRITE = "Restate this in one short sentence: {text}"


@dataclass(frozen=True, slots=True)
class ChainStep:
    """One step's output: how many claims it made and how many lacked support."""

    text: str
    claims: int
    unsupported: int
    request_id: str = ""

    @property
    def failed(self) -> bool:
        return self.unsupported > 0


@dataclass(frozen=True, slots=True)
class Chain:
    """One question's chain; ``isolated`` is the rewrite step run alone on a clean input."""

    steps: tuple[ChainStep, ...]
    gated: bool
    isolated: ChainStep | None = None

    @property
    def length(self) -> int:
        return len(self.steps)

    def failed_at(self, length: int) -> bool:
        """The output after ``length`` steps holds an unsupported claim."""
        return self.steps[length - 1].failed


def assess(
    checker: GroundingChecker,
    text: str,
    evidence: Sequence[str],
    question: str,
    request_id: str = "",
) -> ChainStep:
    report = checker.assess(text, list(evidence), question=question)
    unsupported = sum(1 for c in report.claims if c.label != "supported")
    return ChainStep(text, len(report.claims), unsupported, request_id)


def gate(checker: GroundingChecker, text: str, evidence: Sequence[str], question: str) -> str:
    """``text`` without its sentences the checker finds unsupported ('' when none is left)."""
    kept = [s for s in split_sentences(text) if not assess(checker, s, evidence, question).failed]
    return " ".join(kept)


async def run_chain(
    pipeline: Pipeline,
    checker: GroundingChecker,
    question: str,
    evidence: Sequence[str],
    length: int,
    *,
    gated: bool,
    clean: str | None = None,
    model: str = "auto",
    max_tokens: int = 32,
    tags: tuple[str, ...] = (),
) -> Chain:
    """Answer ``question`` from ``evidence``, then rewrite it ``length - 1`` times.

    With ``clean`` (the reference answer) a rewrite of it is run alone too, for
    the isolated rewrite rate.
    """
    documents = tuple(Document(text) for text in evidence)

    async def step(prompt: str, index: int) -> ChainStep:
        request = Request(
            messages=(Message("user", prompt),),
            model=model,
            max_tokens=max_tokens,
            documents=documents,
            tags=("chain", f"chain-step:{index}", *tags),
        )
        answer = await pipeline.complete(request)
        out = answer.completion.text.strip()
        return assess(checker, out, evidence, question, request.request_id)

    steps: list[ChainStep] = []
    text = question
    for index in range(length):
        done = await step(question if index == 0 else REWRITE.format(text=text), index)
        steps.append(done)
        # the gate passes only supported sentences; nothing left keeps the last clean text
        text = gate(checker, done.text, evidence, question) or text if gated else done.text
    isolated = await step(REWRITE.format(text=clean), -1) if clean else None
    return Chain(tuple(steps), gated, isolated)


def step_rates(chains: Sequence[Chain]) -> tuple[float, float]:
    """(p_answer, p_rewrite): the first step's and the isolated rewrite's unsupported rates."""
    first = [c.steps[0].failed for c in chains if c.steps]
    alone = [c.isolated.failed for c in chains if c.isolated is not None]
    return (sum(first) / len(first) if first else 0.0, sum(alone) / len(alone) if alone else 0.0)


def chain_rate(chains: Sequence[Chain], length: int) -> float:
    """How often the output after ``length`` steps is unsupported."""
    done = [c for c in chains if c.length >= length]
    return sum(c.failed_at(length) for c in done) / len(done) if done else 0.0


def independent_rate(p_answer: float, p_rewrite: float, length: int) -> float:
    """1 - (1 - p_answer)(1 - p_rewrite)^(length-1): independent errors that all survive."""
    return 1.0 - (1.0 - p_answer) * (1.0 - p_rewrite) ** (length - 1)


@dataclass(frozen=True, slots=True)
class CompositionFit:
    """``k`` in 1 - chain = prod(1 - p_i)^k, its 95% bootstrap interval and the verdict."""

    k: float
    low: float
    high: float
    verdict: Composition
    observed: dict[int, float]
    predicted: dict[int, float]


def _k(chains: Sequence[Chain], lengths: Sequence[int]) -> float:
    p_answer, p_rewrite = step_rates(chains)
    num = den = 0.0
    for length in lengths:
        survive = 1.0 - min(independent_rate(p_answer, p_rewrite, length), 0.999)
        b = math.log(survive)
        a = math.log(1.0 - min(chain_rate(chains, length), 0.999))
        num, den = num + a * b, den + b * b
    return num / den if den > 0 else math.nan


def fit_composition(
    chains: Sequence[Chain], *, resamples: int = 500, seed: int = 0
) -> CompositionFit:
    """Fit ``k`` over lengths 2..longest; a bootstrap over chains gives its 95% interval."""
    longest = min((c.length for c in chains), default=0)
    lengths = list(range(2, longest + 1))
    k = _k(chains, lengths)
    rng = random.Random(seed)
    samples = []
    for _ in range(resamples):
        value = _k([rng.choice(chains) for _ in chains], lengths)
        if not math.isnan(value):
            samples.append(value)
    samples.sort()
    low = samples[int(0.025 * len(samples))] if samples else math.nan
    high = samples[min(len(samples) - 1, int(0.975 * len(samples)))] if samples else math.nan
    if math.isnan(k) or not samples:
        verdict: Composition = "undetermined"
    elif low > 1.0:
        verdict = "amplify"
    elif high < 1.0:
        verdict = "caught"
    else:
        verdict = "independent"
    p_answer, p_rewrite = step_rates(chains)
    return CompositionFit(
        k,
        low,
        high,
        verdict,
        {n: chain_rate(chains, n) for n in range(1, longest + 1)},
        {n: independent_rate(p_answer, p_rewrite, n) for n in range(1, longest + 1)},
    )
