"""``pinfactory verify train-cross``: fine-tune the MiniLM cross-encoder, under a seed.

Training pairs come from :func:`pinfactory.verify.datasets.training` (FEVER-NLI, MNLI,
Factcheck-GPT, SummEdits' training domains; never WiCE, SummaC or HaluEval), one per
claim sentence. Each pair's evidence is what the checker itself would read: the
evidence cut into sentences and the ``top_k`` sentences the lexical selection
(:meth:`pinfactory.verify.support.SupportModel.select`) picks, joined in document
order, so training and inference see the same kind of input.

The loop: AdamW, linear warm-up then decay, binary cross-entropy on one logit,
batches of similar length (less padding), ``torch.manual_seed(seed)``. Every
``save_every`` steps the weights are written to ``work/checkpoint`` and a line to
``work/progress.jsonl``; training stops at ``max_steps``, the end of the epochs or the
``deadline`` (a UNIX time), whichever comes first, and always leaves a checkpoint.
:func:`export` writes the shipped float16 copy.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinfactory.verify.claims import split_sentences
from pinfactory.verify.crossencoder import MAX_LENGTH, load_classifier, load_tokenizer
from pinfactory.verify.datasets import claim_pairs, training
from pinfactory.verify.support import SupportModel

Progress = Callable[[int, int, float], None]
"""Called as ``progress(step, total_steps, running_loss)``."""


@dataclass(frozen=True, slots=True)
class Pair:
    """One training pair: the selected ``evidence`` text, the ``claim``, 1 = supported."""

    evidence: str
    claim: str
    label: int
    source: str


def evidence_text(claim: str, sentences: Sequence[str], selector: SupportModel) -> str:
    """The evidence the cross-encoder reads for ``claim``: the selected sentences joined."""
    return " ".join(sentences[i] for i in selector.select(claim, sentences))


def training_pairs(root: Path, per_nli: int, seed: int, top_k: int = 3) -> list[Pair]:
    """Every sentence-level training pair (``per_nli`` FEVER-NLI and MNLI pairs each), its
    evidence selected as at inference, shuffled under ``seed``."""
    selector = SupportModel(top_k=top_k)  # selection only: no encoder is loaded
    pairs = []
    for claim, evidence, label, source in claim_pairs(training(root, per_nli, seed)):
        sentences = [s for doc in evidence for s in split_sentences(doc)]
        pairs.append(Pair(evidence_text(claim, sentences, selector), claim, label, source))
    random.Random(seed).shuffle(pairs)
    return pairs


def batches(pairs: Sequence[Pair], lengths: Sequence[int], size: int, seed: int) -> list[list[int]]:
    """Indexes of ``pairs`` in batches of ``size``: shuffled, then sorted by length within
    windows of 32 batches (less padding), the batches themselves in random order."""
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    out: list[list[int]] = []
    window = size * 32
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        out.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
    rng.shuffle(out)
    return out


def train_cross(
    pairs: Sequence[Pair],
    work: Path,
    seed: int = 0,
    epochs: float = 1.0,
    batch_size: int = 16,
    lr: float = 3e-5,
    max_steps: int | None = None,
    deadline: float | None = None,
    save_every: int = 200,
    threads: int = 1,
    freeze_embeddings: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fine-tune from the base MiniLM; returns the run's summary (also written to
    ``work/progress.jsonl``). The last checkpoint is in ``work/checkpoint``."""
    # torch and transformers (seconds to import) load only when the cross-encoder runs or trains
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    tokenizer = load_tokenizer()
    model = load_classifier()
    model.train()
    if freeze_embeddings:  # a third of the weights: cheaper steps, and the vocabulary stays general
        for parameter in model.bert.embeddings.parameters():
            parameter.requires_grad = False
    encoded = tokenizer(
        [p.evidence for p in pairs],
        [p.claim for p in pairs],
        truncation="longest_first",
        max_length=MAX_LENGTH,
    )
    lengths = [len(ids) for ids in encoded["input_ids"]]
    plan: list[list[int]] = []
    for epoch in range(max(1, math.ceil(epochs))):
        plan.extend(batches(pairs, lengths, batch_size, seed + epoch))
    per_epoch = math.ceil(len(pairs) / batch_size)
    total = min(len(plan), int(per_epoch * epochs), max_steps or len(plan))
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01
    )
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: min((step + 1) / warmup, max(0.0, (total - step) / (total - warmup + 1))),
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    work.mkdir(parents=True, exist_ok=True)
    log = (work / "progress.jsonl").open("a", encoding="utf-8")
    started = time.time()
    running = 0.0
    step = 0
    seen = 0
    try:
        for step, indexes in enumerate(plan[:total], 1):
            features = tokenizer.pad(
                {
                    "input_ids": [encoded["input_ids"][i] for i in indexes],
                    "token_type_ids": [encoded["token_type_ids"][i] for i in indexes],
                    "attention_mask": [encoded["attention_mask"][i] for i in indexes],
                },
                return_tensors="pt",
            )
            target = torch.tensor([float(pairs[i].label) for i in indexes])
            logits = model(**features).logits[:, 0]
            loss = loss_fn(logits, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            seen += len(indexes)
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if progress is not None:
                progress(step, total, running)
            out_of_time = deadline is not None and time.time() >= deadline
            if step % save_every == 0 or step == total or out_of_time:
                model.save_pretrained(str(work / "checkpoint"))
                elapsed = time.time() - started
                record = {"step": step, "of": total, "pairs": seen, "loss": round(running, 4),
                          "seconds": round(elapsed, 1), "pairs_per_s": round(seen / elapsed, 2),
                          "seed": seed}  # fmt: skip
                log.write(json.dumps(record) + "\n")
                log.flush()
            if out_of_time:
                break
    finally:
        log.close()
    elapsed = time.time() - started
    return {"steps": step, "of": total, "pairs": seen, "seconds": round(elapsed, 1),
            "pairs_per_s": round(seen / max(elapsed, 1e-9), 2), "loss": round(running, 4),
            "seed": seed, "train_pairs": len(pairs), "lr": lr, "batch_size": batch_size,
            "max_length": MAX_LENGTH}  # fmt: skip


def export(checkpoint: Path, out: Path) -> Path:
    """Write ``checkpoint``'s weights to ``out`` as float16 safetensors (the shipped form)."""
    model = load_classifier(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(str(out))
    return out / "model.safetensors"
