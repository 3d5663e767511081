"""A document store in SQLite with hybrid search: BM25 (bm25s) and static MiniLM embeddings.

Documents are cut into chunks of whole sentences (about ``chunk_words``
words, the last ``overlap`` sentences repeated at the start of the next
chunk); each chunk's embedding is stored beside its text. Search ranks the
chunks twice, by BM25 over Snowball stems and by cosine similarity, and fuses
the two rankings by reciprocal rank fusion (RRF, k=60), which needs no score
calibration between the two.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pinfactory.documents.reader import MAX_BYTES, DocumentError, read_document
from pinfactory.embeddings import Encoder, Vectors, get_encoder
from pinfactory.errors import PinfactoryError
from pinfactory.verify.claims import split_sentences, tokens
from pinfactory.verify.guards import instruction_in

RRF_K = 60
SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
  id INTEGER PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL,
  sha256 TEXT NOT NULL UNIQUE, added TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY, document INTEGER NOT NULL REFERENCES documents(id),
  ord INTEGER NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL
);
"""


class StoreError(PinfactoryError):
    code = "document_store_failed"


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk and how it ranked."""

    text: str
    title: str
    source: str
    score: float
    similarity: float
    bm25: float


@dataclass(slots=True)
class IngestReport:
    """What one ``add`` did: per file, chunks added, skipped as known, or why it failed."""

    added: list[tuple[str, int]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)  # (file, instruction in it)

    @property
    def chunks(self) -> int:
        return sum(n for _, n in self.added)


def chunk_text(text: str, chunk_words: int = 80, overlap: int = 1) -> list[str]:
    """Whole-sentence chunks of about ``chunk_words`` words, ``overlap`` sentences shared."""
    sentences = split_sentences(text)
    chunks: list[str] = []
    current: list[str] = []
    words = 0
    for sentence in sentences:
        count = len(sentence.split())
        if current and words + count > chunk_words:
            chunks.append(" ".join(current))
            current = current[-overlap:] if overlap else []
            words = sum(len(s.split()) for s in current)
        current.append(sentence)
        words += count
    if current and (not chunks or current != chunks[-1:]):
        chunks.append(" ".join(current))
    return chunks


def search_terms(text: str) -> list[str]:
    found = tokens(text)
    return [*found.sequence, *sorted(found.entities - set(found.sequence))]


class DocumentStore:
    """Chunks, their embeddings and a BM25 index; SQLite on disk or ``:memory:``."""

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        encoder: Encoder | None = None,
        chunk_words: int = 80,
        overlap: int = 1,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.path = str(path)
        self.chunk_words = chunk_words
        self.overlap = overlap
        self.max_bytes = max_bytes
        self._encoder = encoder
        self._db: sqlite3.Connection | None = None
        self._index: Any = None
        self._rows: list[tuple[str, str, str]] = []
        self._vectors: Vectors | None = None

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = get_encoder("minilm-static")
        return self._encoder

    def open(self) -> DocumentStore:
        if self._db is None:
            try:
                self._db = sqlite3.connect(self.path, check_same_thread=False)
                self._db.executescript(SCHEMA)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot open the document store: {exc}") from exc
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> DocumentStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the document store is not open")
        return self._db

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def add_files(self, paths: Iterable[Path]) -> IngestReport:
        """Ingest files one by one; a bad file is reported and the rest still go in."""
        report = IngestReport()
        for path in _expand(paths):
            try:
                title, text = read_document(path, max_bytes=self.max_bytes)
            except DocumentError as exc:
                report.failed.append((str(path), exc.problem))
                continue
            if (instruction := instruction_in(text)) is not None:
                report.flagged.append((str(path), instruction))
            added = self.add_text(text, title=title, source=str(path))
            if added:
                report.added.append((str(path), added))
            else:
                report.unchanged.append(str(path))
        return report

    def add_text(self, text: str, *, title: str = "", source: str = "") -> int:
        """Add one document; returns its number of chunks (0 when the same text is stored)."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        if self.db.execute("SELECT 1 FROM documents WHERE sha256 = ?", (digest,)).fetchone():
            return 0
        chunks = chunk_text(text, self.chunk_words, self.overlap)
        vectors = self.encoder.encode(chunks)
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO documents (source, title, sha256) VALUES (?, ?, ?)",
                (source, title, digest),
            )
            self.db.executemany(
                "INSERT INTO chunks (document, ord, text, vector) VALUES (?, ?, ?, ?)",
                [
                    (cursor.lastrowid, i, chunk, vectors[i].astype(np.float32).tobytes())
                    for i, chunk in enumerate(chunks)
                ],
            )
        self._index = None
        return len(chunks)

    def search(self, query: str, top_k: int = 4) -> list[Hit]:
        """The ``top_k`` chunks by reciprocal rank fusion of BM25 and embedding similarity."""
        self._ensure_index()
        if not self._rows or self._vectors is None:
            return []
        count = len(self._rows)
        similarity = self._vectors @ self.encoder.encode([query])[0]
        bm25 = np.zeros(count, dtype=np.float32)
        terms = search_terms(query)
        if terms:
            ids, scores = self._index.retrieve([terms], k=count, show_progress=False)
            bm25[ids[0]] = scores[0]
        fused = np.zeros(count)
        for ranking in (np.argsort(-similarity, kind="stable"), np.argsort(-bm25, kind="stable")):
            fused[ranking] += 1.0 / (RRF_K + np.arange(1, count + 1))
        fused[bm25 <= 0] -= 0.5 / RRF_K  # no shared term: rank below every lexical match
        best = np.argsort(-fused, kind="stable")[:top_k]
        return [
            Hit(
                self._rows[i][0],
                self._rows[i][1],
                self._rows[i][2],
                float(fused[i]),
                float(similarity[i]),
                float(bm25[i]),
            )
            for i in best
        ]

    def _ensure_index(self) -> None:
        if self._index is not None:
            return
        # bm25s (about 0.4 s to import) loads only when a store builds its index
        import bm25s

        rows = self.db.execute(
            "SELECT c.text, d.title, d.source, c.vector FROM chunks c "
            "JOIN documents d ON d.id = c.document ORDER BY c.id"
        ).fetchall()
        self._rows = [(text, title, source) for text, title, source, _ in rows]
        if not rows:
            self._vectors = None
            self._index = bm25s.BM25()
            return
        self._vectors = np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows])
        index = bm25s.BM25()
        index.index([search_terms(text) or ["_"] for text, *_ in rows], show_progress=False)
        self._index = index


def in_memory(texts: Sequence[tuple[str, str]], encoder: Encoder | None = None) -> DocumentStore:
    """A throwaway store over (title, text) pairs, e.g. the documents a request carries."""
    store = DocumentStore(encoder=encoder).open()
    for title, text in texts:
        store.add_text(text, title=title, source=title)
    return store


def _expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given, directories as their files (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        else:
            files.append(path)
    return files
