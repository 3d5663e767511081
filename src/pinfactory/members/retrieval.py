"""A member that answers only from retrieved passages, citing each sentence.

Answering is extractive: the sentences of the retrieved passages that best
support the question (its terms, weighted by rarity in the question, plus
embedding similarity) are returned verbatim, each marked with ``[n]``, the
number of its passage. When no sentence reaches ``min_score`` the member
says the answer is not in the documents instead of guessing. A sentence that
reads as an instruction ("ignore previous instructions...") is never part of an
answer; the verify stage flags and fences the passages that carry one. A request that
carries its own ``documents`` is answered from those alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pinfactory.documents.store import DocumentStore, Hit, in_memory
from pinfactory.embeddings import get_encoder
from pinfactory.errors import MemberError
from pinfactory.members.base import Completion, Member, Usage
from pinfactory.members.registry import register
from pinfactory.request import Document, Request, estimate_tokens
from pinfactory.verify.claims import split_sentences, tokens
from pinfactory.verify.guards import instruction_in

NOT_FOUND = "That is not in the documents."
_QUESTION_WORDS = frozenset({"long", "much", "often", "far", "get", "doe", "take", "can"})


class RetrievalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(
        default=None, description="SQLite store from `pinfactory docs add`; default: sources"
    )
    sources: list[str] = Field(
        default=[],
        description="files or folders ingested in memory at open (default: the demo docs)",
    )
    top_k: int = Field(default=4, ge=1, le=50)
    min_score: float = Field(default=0.45, ge=0, le=1)
    max_sentences: int = Field(default=2, ge=1, le=10)


@dataclass(frozen=True, slots=True)
class GroundedCompletion(Completion):
    """A completion plus the passages its citations ``[1]``, ``[2]``... refer to."""

    passages: tuple[Document, ...] = ()


def demo_documents() -> Path:
    return Path(str(resources.files("pinfactory") / "data" / "docs"))


@register
class RetrievalMember(Member):
    kind = "retrieval"
    cites = True
    Settings = RetrievalSettings
    settings: RetrievalSettings

    _store: DocumentStore | None = None

    async def open(self) -> None:
        if self._store is None:
            self._store = await asyncio.to_thread(self._open_store)

    def _open_store(self) -> DocumentStore:
        if self.settings.store:
            return DocumentStore(self.settings.store).open()
        store = DocumentStore().open()
        sources = [Path(s) for s in self.settings.sources] or [demo_documents()]
        report = store.add_files(sources)
        if report.failed and not report.added:
            raise MemberError(self.name, f"no usable sources: {report.failed[0][1]}")
        return store

    async def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    async def complete(self, request: Request) -> Completion:
        if self._store is None:
            raise MemberError(self.name, "member is not open")
        return await asyncio.to_thread(self.answer, request, self._store)

    def answer(self, request: Request, store: DocumentStore) -> GroundedCompletion:
        question = request.text
        if request.documents:
            own = in_memory([(d.title or f"document {i + 1}", d.text) for i, d in
                             enumerate(request.documents)])  # fmt: skip
            try:
                hits = own.search(question, self.settings.top_k)
            finally:
                own.close()
        else:
            hits = store.search(question, self.settings.top_k)
        text, passages = compose(question, hits, self.settings)
        usage = Usage(request.prompt_tokens, estimate_tokens(text))
        return GroundedCompletion(
            text=text,
            usage=usage,
            cost_usd=self.price.cost(usage),
            model=f"retrieval:{self.name}",
            finish_reason="stop" if passages else "refused",
            refused=not passages,
            passages=passages,
        )


def compose(
    question: str, hits: list[Hit], settings: RetrievalSettings
) -> tuple[str, tuple[Document, ...]]:
    """The cited extractive answer and the passages it cites, or :data:`NOT_FOUND`."""
    asked = tokens(question)
    terms = (asked.content - _QUESTION_WORDS) | {"#" + n for n in asked.numbers}
    candidates: list[tuple[float, int, str]] = []
    for rank, hit in enumerate(hits):
        for sentence in split_sentences(hit.text):
            if len(sentence.split()) < 4 or instruction_in(sentence):
                continue  # too short to answer, or an instruction planted in a document
            said = tokens(sentence)
            have = said.content | {"#" + n for n in said.numbers}
            overlap = len(terms & have) / len(terms) if terms else 0.0
            candidates.append((overlap, rank, sentence))
    if not candidates:
        return NOT_FOUND, ()
    encoder = get_encoder("minilm-static")
    vectors = encoder.encode([question] + [c[2] for c in candidates])
    similarity = vectors[1:] @ vectors[0]
    scored = sorted(
        (
            (0.6 * overlap + 0.4 * float(max(sim, 0.0)), rank, sentence)
            for (overlap, rank, sentence), sim in zip(candidates, similarity, strict=True)
            if overlap > 0
        ),
        key=lambda c: -c[0],
    )
    chosen: list[tuple[float, int, str]] = []
    for item in scored:
        if item[0] < settings.min_score or len(chosen) == settings.max_sentences:
            break
        if all(item[2] != c[2] for c in chosen) and (not chosen or item[0] >= 0.8 * chosen[0][0]):
            chosen.append(item)
    if not chosen:
        return NOT_FOUND, ()
    numbers: dict[int, int] = {}
    for _, rank, _ in chosen:
        numbers.setdefault(rank, len(numbers) + 1)
    passages = tuple(
        Document(hits[rank].text, hits[rank].title)
        for rank in sorted(numbers, key=numbers.get)  # type: ignore[arg-type]
    )
    text = " ".join(_cite(sentence, numbers[rank]) for _, rank, sentence in chosen)
    return text, passages


def _cite(sentence: str, number: int) -> str:
    body = sentence.rstrip()
    end = body[-1] if body and body[-1] in ".!?" else "."
    return f"{body.rstrip('.!?')} [{number}]{end}"


__all__ = ["NOT_FOUND", "GroundedCompletion", "RetrievalMember", "compose"]
