"""The end-to-end effect of retrieval and verification on what reaches the user.

Thirty questions over the shipped policy documents (``src/pinfactory/data/docs``;
27 answerable, 3 whose answer is in no document) are answered by the local Gemma
3 270M member in these settings:

- ``alone``: the model with the question only;
- ``rag``: the model with the top passages of the document store in its prompt;
- ``rag+verify``: ``rag`` through the verify stage (``on_low_confidence: review``):
  an answer below the confidence threshold is withheld, not shown;
- ``rag+verify->docs``: ``rag`` through the verify stage with
  ``on_low_confidence: escalate`` to the extractive retrieval member;
- ``retrieval``: the extractive ``retrieval`` member alone.

How answers are judged (automatically, no human labels):

- an answer *reaches the user* unless it abstains ("not in the documents") or is
  withheld for review;
- the grounding checker judges its claims against the retrieved passages, against
  the reference answer, and against both together;
- *accurate*: every key fact of the reference (a number, a name) is in the answer,
  or, for yes/no questions, the answer's polarity matches; for a question the
  documents do not answer, only an abstention is accurate;
- *hallucinated* = reaches the user and (a claim is unsupported or contradicted by
  passages + reference, or the answer is not accurate).

Writes bench/results/rag_effect.json.

    python bench/rag_effect.py [--json] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pinfactory.documents.store import DocumentStore
from pinfactory.members.base import Completion, Member
from pinfactory.members.llamacpp import LlamaCppMember, LlamaCppSettings
from pinfactory.members.retrieval import (
    RetrievalMember,
    RetrievalSettings,
    demo_documents,
)
from pinfactory.pipeline import Answer
from pinfactory.request import Document, Request
from pinfactory.routing import Decision
from pinfactory.verify.claims import NEGATIONS, normalise_number
from pinfactory.verify.grounding import GroundingChecker
from pinfactory.verify.policy import VerificationSpec
from pinfactory.verify.stage import HELD, VerifyStage

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "bench" / "data" / "rag_questions.jsonl"
TOP_K = 3
SETTINGS = ("alone", "rag", "rag+verify", "rag+verify->docs", "retrieval")
BAD = ("unsupported", "contradicted")


@dataclass(frozen=True, slots=True)
class Question:
    id: int
    question: str
    reference: str
    answerable: bool
    polarity: str | None = None
    facts: tuple[tuple[str, ...], ...] = ()


@dataclass(slots=True)
class Outcome:
    """One setting's answer to one question, and how it was judged."""

    question: int
    setting: str
    text: str
    latency_ms: float
    reaches_user: bool
    accurate: bool
    vs_passages: str = "none"
    vs_reference: str = "none"
    vs_both: str = "none"
    confidence: float | None = None
    escalation: str | None = None
    claims: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hallucinated(self) -> bool:
        return self.reaches_user and (self.vs_both in BAD or not self.accurate)


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    questions = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        questions.append(
            Question(
                row["id"],
                row["question"],
                row["reference"],
                row["answerable"],
                row.get("polarity"),
                tuple(tuple(group) for group in row.get("facts", [])),
            )
        )
    return questions


def abstains(text: str) -> bool:
    lowered = text.lower()
    return text == HELD or "not in the documents" in lowered or not text.strip()


def _has(text: str, phrase: str) -> bool:
    """``phrase`` as whole words; a number by value (``12`` is in ``£12.00``, not in ``112``)."""
    if re.fullmatch(r"\d+(?:\.\d+)?", phrase):
        found = re.findall(r"(?<![\d.])\d+(?:[.,]\d+)*", text)
        return normalise_number(phrase) in {normalise_number(n) for n in found}
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text) is not None


def accurate(question: Question, text: str) -> bool:
    """Whether the answer agrees with the reference (see the module docstring)."""
    if not question.answerable:
        return abstains(text)
    if abstains(text):
        return False
    lowered = text.lower()
    facts = bool(question.facts) and all(
        any(_has(lowered, p) for p in group) for group in question.facts
    )
    if question.polarity is None:
        return facts
    words = re.findall(r"[a-z']+", lowered.replace("n't", " not"))
    said = words[0] if words and words[0] in ("yes", "no") else None
    said = said or ("no" if any(w in NEGATIONS for w in words) else "yes")
    return facts or said == question.polarity


def judge(
    checker: GroundingChecker,
    question: Question,
    passages: Sequence[Document],
    outcome: Outcome,
) -> Outcome:
    """Fill in the checker's labels and accuracy for one outcome."""
    outcome.accurate = accurate(question, outcome.text)
    if not outcome.reaches_user:
        return outcome
    reference = Document(question.reference, "reference")
    asked = question.question
    outcome.vs_passages = checker.assess(outcome.text, passages, asked).label
    outcome.vs_reference = checker.assess(outcome.text, [reference], asked).label
    both = checker.assess(outcome.text, [*passages, reference], asked)
    outcome.vs_both = both.label
    outcome.claims = [{"text": c.text, "label": c.label} for c in both.claims]
    return outcome


class Bench:
    """The members and the store, opened once; :meth:`ask` runs every setting."""

    def __init__(self, max_tokens: int = 48) -> None:
        # A generous timeout: on a shared 2-core machine one generation can take 30 s.
        self.local = LlamaCppMember(
            "local", LlamaCppSettings(max_tokens=max_tokens), timeout_s=300.0
        )
        self.docs = RetrievalMember("docs", RetrievalSettings(top_k=TOP_K), tier="documents")
        self.store = DocumentStore()
        self.checker = GroundingChecker()
        self.members: dict[str, Member] = {"local": self.local, "docs": self.docs}
        held = VerificationSpec(on_low_confidence="review", min_confidence=0.6)
        escalate = held.model_copy(update={"on_low_confidence": "escalate", "escalate_to": "docs"})
        self.review_stage = VerifyStage(held)
        self.escalate_stage = VerifyStage(escalate)

    async def open(self) -> None:
        await self.local.open()
        await self.docs.open()
        self.store.open()
        self.store.add_files([demo_documents()])
        self.checker.assess("warm up", ["warm up the encoder"])

    async def close(self) -> None:
        await self.local.close()
        await self.docs.close()
        self.store.close()

    async def _verified(
        self, stage: VerifyStage, request: Request, completion: Completion
    ) -> tuple[Answer, float]:
        started = time.perf_counter()
        decision = Decision(member="local", reason="bench", router="bench", tier="small")
        answer = Answer(request, decision, completion, 0.0)
        answer = await stage.review(answer, self.members)
        return answer, (time.perf_counter() - started) * 1000

    async def ask(self, question: Question) -> list[Outcome]:
        q = question.question
        outcomes: list[Outcome] = []

        started = time.perf_counter()
        alone = await self.local.complete(Request.from_text(q))
        outcomes.append(self._outcome(question, "alone", alone.text, started))

        started = time.perf_counter()
        passages = [Document(h.text, h.title) for h in self.store.search(q, TOP_K)]
        request = Request.from_text(q, documents=tuple(passages))  # the member lays them out
        rag = await self.local.complete(request)
        rag_ms = (time.perf_counter() - started) * 1000
        outcomes.append(self._outcome(question, "rag", rag.text, started))

        for name, stage in (("rag+verify", self.review_stage), ("rag+verify->docs",
                                                                 self.escalate_stage)):  # fmt: skip
            answer, verify_ms = await self._verified(stage, request, rag)
            escalation = answer.escalation
            text = answer.completion.text
            outcome = Outcome(
                question.id,
                name,
                text,
                rag_ms + verify_ms,
                reaches_user=not abstains(text) and not answer.completion.refused,
                accurate=False,
                confidence=answer.verdict.confidence if answer.verdict else None,
                escalation=escalation.kind if escalation else None,
            )
            outcomes.append(outcome)

        started = time.perf_counter()
        extractive = await self.docs.complete(Request.from_text(q))
        outcomes.append(self._outcome(question, "retrieval", extractive.text, started))
        return [judge(self.checker, question, passages, o) for o in outcomes]

    def _outcome(self, question: Question, setting: str, text: str, started: float) -> Outcome:
        ms = (time.perf_counter() - started) * 1000
        return Outcome(question.id, setting, text, ms, not abstains(text), False)


async def run(
    questions: Sequence[Question],
    bench: Bench | None = None,
    on_question: Callable[[Question], None] | None = None,
) -> list[Outcome]:
    """Every setting's judged outcome for every question."""
    own = bench is None
    bench = bench or Bench()
    if own:
        await bench.open()
    try:
        outcomes: list[Outcome] = []
        for question in questions:
            outcomes.extend(await bench.ask(question))
            if on_question is not None:
                on_question(question)
        return outcomes
    finally:
        if own:
            await bench.close()


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Per setting: shares of answers, accuracy, latency; and the relative reductions."""
    settings: dict[str, Any] = {}
    for name in SETTINGS:
        mine = [o for o in outcomes if o.setting == name]
        if not mine:
            continue
        n = len(mine)
        reach = [o for o in mine if o.reaches_user]
        latencies = sorted(o.latency_ms for o in mine)
        settings[name] = {
            "n": n,
            "reaches_user": round(len(reach) / n, 4),
            "hallucinated": round(sum(o.hallucinated for o in mine) / n, 4),
            "unsupported_vs_passages": round(sum(o.vs_passages in BAD for o in reach) / n, 4),
            "unsupported_vs_reference": round(sum(o.vs_reference in BAD for o in reach) / n, 4),
            "wrong_reaching_user": round(sum(not o.accurate for o in reach) / n, 4),
            "accuracy": round(sum(o.accurate for o in mine) / n, 4),
            "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(latencies[min(n - 1, int(0.95 * n))], 1),
        }

    def reduction(base: str, other: str) -> float | None:
        if base not in settings or other not in settings:
            return None
        before = settings[base]["hallucinated"]
        return round(1 - settings[other]["hallucinated"] / before, 4) if before else None

    return {
        "settings": settings,
        "relative_reduction_in_hallucination": {
            "rag_vs_alone": reduction("alone", "rag"),
            "rag+verify_vs_alone": reduction("alone", "rag+verify"),
            "rag+verify->docs_vs_alone": reduction("alone", "rag+verify->docs"),
            "retrieval_vs_alone": reduction("alone", "retrieval"),
        },
        "essay_claim": 0.71,
    }


JUDGING = (
    "Automatic judging, no human labels. An answer reaches the user unless it abstains "
    "('not in the documents') or is withheld for review. hallucinated = reaches the user and "
    "(the grounding checker finds a claim unsupported or contradicted against the top-3 "
    "retrieved passages plus the reference answer, or the answer misses the reference's key "
    "facts / yes-no polarity; for the 3 unanswerable questions any answer that is not an "
    "abstention). unsupported_vs_passages / _vs_reference: the checker against each alone "
    "(bare yes/no answers are 'unverified' there, so only accuracy catches them). Shares are "
    "of all questions. Latency includes retrieval and verification on this shared 2-core "
    "machine."
)


def main() -> None:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    args = parser.parse_args()
    questions = load_questions()[: args.limit]
    console = Console(stderr=args.json, width=120)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("answering", total=len(questions))
        outcomes = asyncio.run(run(questions, on_question=lambda _: progress.advance(task)))
    summary = summarise(outcomes)
    result = {
        "n_questions": len(questions),
        "answerable": sum(q.answerable for q in questions),
        "model": "gemma-3-270m (base, Q4_K_M) via llama.cpp, temperature 0, max_tokens 48",
        "top_k": TOP_K,
        "min_confidence": 0.6,
        "judging": JUDGING,
        **summary,
        "answers": [{**vars_of(o), "hallucinated": o.hallucinated} for o in outcomes],
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.limit is None:
        (out_dir / "rag_effect.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "answers"}))
        return
    table = Table(title=f"RAG effect: {len(questions)} questions over the shipped documents")
    columns = ("setting", "shown", "halluc.", "vs passages", "vs ref.", "wrong shown", "acc.",
               "p50 ms", "p95 ms")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "setting" else "right", no_wrap=True)
    for name, row in summary["settings"].items():
        table.add_row(
            name,
            *(f"{row[k]:.0%}" for k in SHARES),
            f"{row['p50_ms']:.0f}",
            f"{row['p95_ms']:.0f}",
        )
    console.print(table)
    for key, value in summary["relative_reduction_in_hallucination"].items():
        shown = "n/a" if value is None else f"{value:.0%}"
        console.print(f"relative reduction in hallucination, {key}: {shown} (essay claims 71%)")
    console.print(f"[dim]{JUDGING}[/dim]")


SHARES = (
    "reaches_user",
    "hallucinated",
    "unsupported_vs_passages",
    "unsupported_vs_reference",
    "wrong_reaching_user",
    "accuracy",
)


def vars_of(outcome: Outcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in Outcome.__dataclass_fields__}


if __name__ == "__main__":
    main()
