"""``pinfactory verify train``: the support model's head, its claim threshold and the
answer calibration, reproducible under a seed.

Phases (each featurised set is cached in ``--work``, so a re-run only refits):

1. **Featurise** the training pairs (:func:`pinfactory.verify.datasets.training`,
   sentence-level) and the development answers through the checker's own path
   (claim splitting, evidence selection, frozen-MiniLM alignment features).
2. **Fit the head**: an MLP (scikit-learn, ``random_state=seed``) on the training
   pairs, its weights exported to numpy (:class:`~pinfactory.verify.support.SupportHead`).
3. **Tune on development data only**: the claim threshold that maximises the mean
   answer-level balanced accuracy over the development sets, then the answer
   calibration (logistic) on the same sets.
4. **Write** ``support-head.npz`` and ``calibration.json`` to ``--out`` and a
   metrics JSON (dev AUROC, BA, ECE per set) beside them.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pinfactory.verify.confidence import (
    CROSS_FUSED_FEATURES,
    FUSED_FEATURES,
    Calibrator,
    expected_calibration_error,
)
from pinfactory.verify.crossencoder import CrossEncoder, cross_encoder_path
from pinfactory.verify.crossfit import choose_features, cross_fitted, out_of_kind_heads
from pinfactory.verify.datasets import HELD_OUT_SETS, Item, claim_pairs, development, training
from pinfactory.verify.grounding import GroundingChecker, GroundingSettings, Plan, answer_features
from pinfactory.verify.support import (
    FEATURES,
    SupportHead,
    SupportModel,
    head_path,
    lexical_features,
)

SHARD = 2000  # training pairs featurised and cached together
FUSION_VERSION = 3  # bump when the fused features change: invalidates cached rows
Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)``."""


@dataclass(slots=True)
class Featurised:
    """Per answer: the claim feature matrix ``[claims, F]``, the answer's 0/1 label,
    per-claim labels where known (training) and the source set."""

    matrices: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    texts: list[list[tuple[str, list[str]]]] = field(default_factory=list)
    """Per answer, per claim: the checked text and the evidence sentences it read (so the
    lexical features can be recomputed without the encoder)."""

    def save(self, path: Path) -> None:
        counts = np.array([len(m) for m in self.matrices], dtype=np.int64)
        stacked = np.concatenate(self.matrices) if self.matrices else np.zeros((0, len(FEATURES)))
        np.savez_compressed(
            path, x=stacked, counts=counts, labels=np.array(self.labels),
            sources=np.array(self.sources), texts=np.array(json.dumps(self.texts)),
        )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Featurised:
        with np.load(path) as data:
            x, counts = data["x"], data["counts"]
            offsets = np.concatenate([[0], np.cumsum(counts)])
            return cls(
                [x[offsets[i] : offsets[i + 1]] for i in range(len(counts))],
                [int(v) for v in data["labels"]],
                [str(v) for v in data["sources"]],
                [[(c, list(e)) for c, e in claims] for claims in json.loads(str(data["texts"]))],
            )


def featurise(
    checker: GroundingChecker,
    items: Sequence[tuple[str, Sequence[str], str, int, str]],
    phase: str,
    progress: Progress,
    chunk: int = 32,
) -> Featurised:
    """Feature matrices of ``(answer, evidence, question, label, source)`` items, encoded
    ``chunk`` items to a batch."""
    out = Featurised()
    for start in range(0, len(items), chunk):
        batch = items[start : start + chunk]
        plans: list[Plan] = [checker.plan(a, e, q) for a, e, q, _, _ in batch]
        checker.model.encode([t for plan in plans for t in plan.texts()])
        for plan, (_, _, _, label, source) in zip(plans, batch, strict=True):
            out.matrices.append(checker.claim_features(plan))
            out.texts.append(
                [
                    (u.hypothesis, [plan.sentences[i] for i in c])
                    for u, c in zip(plan.units, plan.chosen, strict=True)
                ]
            )
            out.labels.append(label)
            out.sources.append(source)
        progress(phase, min(start + chunk, len(items)), len(items))
    return out


def _key(items: Sequence[tuple[str, Sequence[str], str, int, str]]) -> str:
    digest = hashlib.sha256(",".join(FEATURES).encode())
    for answer, evidence, question, label, source in items:
        digest.update(f"{answer}\0{question}\0{label}\0{source}\0".encode())
        for text in evidence:
            digest.update(text.encode())
    return digest.hexdigest()[:16]


def refresh_lexical(data: Featurised) -> Featurised:
    """Recompute the lexical columns (quantities, negation, coverage...) from the stored
    texts, so a cached set follows the current rules without another encoder pass."""

    columns = None
    for matrix, claims in zip(data.matrices, data.texts, strict=True):
        for row, (claim, evidence) in zip(matrix, claims, strict=True):
            values = lexical_features(claim, evidence)
            columns = columns or [FEATURES.index(name) for name in values]
            row[columns] = list(values.values())
    return data


def cached(
    work: Path,
    name: str,
    checker: GroundingChecker,
    items: Sequence[tuple[str, Sequence[str], str, int, str]],
    progress: Progress,
) -> Featurised:
    """:func:`featurise`, cached in ``work`` by the items' content and the feature list."""
    path = work / f"{name}-{_key(items)}.npz"
    if path.exists():
        return refresh_lexical(Featurised.load(path))
    result = featurise(checker, items, name, progress)
    work.mkdir(parents=True, exist_ok=True)
    result.save(path)
    return result


def training_items(
    root: Path, per_nli: int, seed: int
) -> list[tuple[str, tuple[str, ...], str, int, str]]:
    """Sentence-level training pairs as featurise() items."""
    return [(c, e, "", y, s) for c, e, y, s in claim_pairs(training(root, per_nli, seed))]


def answer_items(items: list[Item]) -> list[tuple[str, tuple[str, ...], str, int, str]]:
    return [(i.answer, i.evidence, i.question, i.label, i.source) for i in items]


def fit_head(x: np.ndarray, y: np.ndarray, seed: int, hidden: int = 32) -> SupportHead:
    """An MLP on standardised features (early stopping on a 10% split), as numpy arrays."""
    # scikit-learn (seconds to import) loads only when a model is fitted
    from sklearn.neural_network import MLPClassifier

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    mlp = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        alpha=1e-3,
        max_iter=400,
        early_stopping=True,
        n_iter_no_change=20,
        random_state=seed,
    ).fit((x - mean) / scale, y)
    arrays = {
        "mean": mean,
        "scale": scale,
        "w1": mlp.coefs_[0],
        "b1": mlp.intercepts_[0],
        "w2": mlp.coefs_[1][:, 0],
        "b2": np.array(mlp.intercepts_[1][0]),
    }
    # The head ships as float16: fit-time arrays are rounded the same way.
    return SupportHead(
        {k: v.astype(np.float16).astype(np.float64) for k, v in arrays.items()}, FEATURES
    )


def answer_decisions(
    head: SupportHead, data: Featurised, threshold: float
) -> tuple[list[dict[str, float]], list[bool]]:
    """Per answer: the calibration features and whether every claim clears ``threshold``
    (the lexical contradiction rules are applied by the checker, not here)."""
    rows, passed = [], []
    for matrix in data.matrices:
        if len(matrix) == 0:
            rows.append({"claims": 0.0})
            passed.append(True)
            continue
        p = head.predict(matrix)
        labels = ["supported" if v >= threshold else "unsupported" for v in p]
        rows.append(answer_features(list(p), labels))
        passed.append(all(v >= threshold for v in p))
    return rows, passed


def balanced_accuracy(labels: Sequence[int], passed: Sequence[bool]) -> float:
    y = np.asarray(labels)
    p = np.asarray(passed)
    positive = (p[y == 1]).mean() if (y == 1).any() else 0.0
    negative = (~p[y == 0]).mean() if (y == 0).any() else 0.0
    return float((positive + negative) / 2)


def choose_threshold(head: SupportHead, dev: dict[str, Featurised]) -> tuple[float, float]:
    """The claim threshold with the best mean answer-level BA over the dev sets."""
    best = (0.5, -1.0)
    for threshold in np.round(np.arange(0.05, 0.96, 0.01), 2):
        scores = [
            balanced_accuracy(d.labels, answer_decisions(head, d, float(threshold))[1])
            for d in dev.values()
        ]
        mean = float(np.mean(scores))
        if mean > best[1]:
            best = (float(threshold), mean)
    return best


@dataclass(slots=True)
class TrainingResult:
    head: SupportHead
    threshold: float
    metrics: dict[str, Any]
    calibration: dict[str, Any]


def _quiet(phase: str, done: int, total: int) -> None:  # noqa: ARG001 (a Progress)
    return None


def training_set(
    root: Path, work: Path, checker: GroundingChecker, per_nli: int, seed: int, report: Progress
) -> Featurised:
    """The featurised training pairs (cached in ``work`` by shards, so an interrupted run
    resumes)."""
    items = training_items(root, per_nli, seed)
    random.Random(seed).shuffle(items)
    out = Featurised()
    for start in range(0, len(items), SHARD):
        shard = cached(
            work, f"train{start // SHARD:02d}", checker, items[start : start + SHARD], report
        )
        out.matrices += shard.matrices
        out.labels += shard.labels
        out.sources += shard.sources
    return out


def single_claim_pairs(data: Featurised) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The pairs the head learns from (one claim each): ``x`` ``[n, F]``, ``y``, sources."""
    keep = [i for i, m in enumerate(data.matrices) if len(m) == 1]
    x = np.concatenate([data.matrices[i] for i in keep])
    return x, np.array([data.labels[i] for i in keep]), [data.sources[i] for i in keep]


def train(
    root: Path,
    work: Path,
    seed: int = 0,
    per_nli: int = 6000,
    hidden: int = 32,
    progress: Progress | None = None,
    checker: GroundingChecker | None = None,
) -> TrainingResult:
    """Featurise (cached), fit the head, tune threshold and calibration on dev."""
    # scikit-learn (seconds to import) loads only when a model is fitted
    from sklearn.metrics import roc_auc_score

    report = progress or _quiet
    checker = checker or GroundingChecker()
    started = time.perf_counter()
    train_set = training_set(root, work, checker, per_nli, seed, report)
    dev_items = development(root, per_nli, seed)
    claims = {  # every dev set's claim features (the cross-fitted calibration reads them)
        name: cached(work, name, checker, answer_items(items), report)
        for name, items in dev_items.items()
    }
    # The claim threshold: answer-level sets (the held-out NLI pairs serve the fusion).
    dev = {name: data for name, data in claims.items() if name not in HELD_OUT_SETS}
    x, y, _ = single_claim_pairs(train_set)
    head = fit_head(x, y, seed, hidden)
    threshold, dev_ba = choose_threshold(head, dev)
    per_set: dict[str, dict[str, float]] = {}
    for name, data in dev.items():
        features, passed = answer_decisions(head, data, threshold)
        weakest = [f.get("min_logit", 0.0) for f in features]
        per_set[name] = {
            "n": len(data.labels),
            "auroc_min_claim": round(float(roc_auc_score(data.labels, weakest)), 4),
            "ba_at_threshold": round(balanced_accuracy(data.labels, passed), 4),
        }
    fused = GroundingChecker(
        GroundingSettings(claim_threshold=threshold, top_k=checker.settings.top_k),
        model=SupportModel(head=head, top_k=checker.settings.top_k),
    )
    rows = {n: fusion_rows(fused, work, n, items, report) for n, items in dev_items.items()}
    rows = cross_fit(rows, claims, train_set, seed, hidden, threshold)
    labels = {name: [i.label for i in items] for name, items in dev_items.items()}
    calibrator, fusion = fit_calibration(rows, labels, seed, claim_threshold=threshold)
    for name, values in fusion.pop("dev").items():
        per_set.setdefault(name, {}).update(values)
    metrics = {
        "seed": seed,
        "train_pairs": len(y),
        "train_positive_share": round(float(y.mean()), 4),
        "claim_threshold": threshold,
        "claim_dev_mean_ba": round(dev_ba, 4),
        **fusion,
        "dev": per_set,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return TrainingResult(head, threshold, metrics, calibrator.to_json())


def cross_fit(
    rows: dict[str, list[dict[str, float]]],
    claims: dict[str, Featurised],
    train_set: Featurised,
    seed: int,
    hidden: int,
    claim_threshold: float,
) -> dict[str, list[dict[str, float]]]:
    """Each development set's fused rows with the claim scores of a head trained without
    its kind (:mod:`pinfactory.verify.crossfit`), the head fitted as :func:`fit_head`."""
    x, y, sources = single_claim_pairs(train_set)
    heads = out_of_kind_heads(
        x, y, sources, list(rows), lambda xs, ys: fit_head(xs, ys, seed, hidden)
    )
    return {
        name: cross_fitted(rows[name], claims[name].matrices, heads[name], claim_threshold)
        for name in rows
    }


def fusion_rows(
    checker: GroundingChecker,
    work: Path,
    name: str,
    items: Sequence[Item],
    progress: Progress,
) -> list[dict[str, float]]:
    """The fused answer features (:meth:`GroundingChecker.signals`) of ``items``, cached in
    ``work`` by the items, the head's weights and the claim threshold."""
    digest = hashlib.sha256(_key(answer_items(list(items))).encode())
    for value in checker.model.head.arrays.values():
        digest.update(np.asarray(value).tobytes())
    digest.update(f"{checker.claim_threshold}:{FUSION_VERSION}".encode())
    cross = checker.cross
    if cross is not None:  # the fine-tuned weights' identity (size and first megabyte)
        weights = (cross.path or cross_encoder_path()) / "model.safetensors"
        with weights.open("rb") as handle:
            digest.update(handle.read(1 << 20) + str(weights.stat().st_size).encode())
    path = work / f"fusion-{name}-{digest.hexdigest()[:16]}.json"
    if path.exists():
        cached_rows: list[dict[str, float]] = json.loads(path.read_text())
        return cached_rows
    rows = []
    for n, item in enumerate(items, 1):
        rows.append(checker.signals(item.answer, item.evidence, item.question).features)
        if n % 25 == 0 or n == len(items):
            progress(f"fusion {name}", n, len(items))
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return rows


def flagged_at(rows: Sequence[dict[str, float]], p: np.ndarray, threshold: float) -> np.ndarray:
    """Which answers the checker flags at an answer threshold: below it, or with a rule's
    contradiction; an answer with no claims is never flagged."""
    contradicted = np.array([r.get("contradicted", 0.0) > 0 for r in rows])
    claims = np.array([r.get("claims", 0.0) > 0 for r in rows])
    flagged: np.ndarray = claims & ((p < threshold) | contradicted)
    return flagged


def fit_fusion(
    checker: GroundingChecker,
    work: Path,
    dev: dict[str, list[Item]],
    seed: int,
    progress: Progress,
    features: Sequence[str] | None = FUSED_FEATURES,
    claim_threshold: float | None = None,
) -> tuple[Calibrator, dict[str, Any]]:
    """:func:`fit_calibration` over the checker's own fused rows of ``dev`` (cached in
    ``work``); ``features`` None chooses them (:func:`~.crossfit.choose_features`)."""
    rows = {name: fusion_rows(checker, work, name, items, progress) for name, items in dev.items()}
    labels = {name: [i.label for i in items] for name, items in dev.items()}
    threshold = checker.claim_threshold if claim_threshold is None else claim_threshold
    return fit_calibration(rows, labels, seed, features, threshold)


def fit_calibration(
    rows: dict[str, list[dict[str, float]]],
    labels: dict[str, list[int]],
    seed: int,
    features: Sequence[str] | None = None,
    claim_threshold: float = 0.5,
) -> tuple[Calibrator, dict[str, Any]]:
    """Fit the answer calibration over the fused ``features`` (None: the candidate chosen
    by leave-one-set-out AUROC) on every development set together, choose the answer
    threshold with the best mean balanced accuracy over the sets, and measure
    leave-one-set-out AUROC (fitted without the set it scores). With the cross-encoder's
    features, its claim threshold is chosen on the same sets first."""
    # scikit-learn (seconds to import) loads only when a model is fitted
    from sklearn.metrics import roc_auc_score

    choice = None
    if features is None:
        choice = choose_features(rows, labels)
        features = choice.features

    def fitted(names: Sequence[str]) -> Calibrator:
        x = [r for n in names for r in rows[n]]
        target = [y for n in names for y in labels[n]]
        return Calibrator(features, claim_threshold=claim_threshold).fit(x, target)

    calibrator = fitted(list(rows))
    if "ce_min_logit" in features:
        calibrator.cross_threshold = cross_threshold(rows, labels)
    scores = {n: np.array([calibrator.predict(r) for r in rows[n]]) for n in rows}
    best = (0.5, -1.0)
    for threshold in np.round(np.arange(0.05, 0.96, 0.01), 2):
        mean = float(
            np.mean(
                [
                    balanced_accuracy(labels[n], list(~flagged_at(rows[n], scores[n], threshold)))
                    for n in rows
                ]
            )
        )
        if mean > best[1]:
            best = (float(threshold), mean)
    calibrator.answer_threshold = best[0]
    per_set: dict[str, dict[str, float]] = {}
    for name in rows:
        others = fitted([n for n in rows if n != name])
        held = [others.predict(r) for r in rows[name]]
        passed = ~flagged_at(rows[name], scores[name], best[0])
        per_set[name] = {
            "n": len(labels[name]),
            "auroc_fused": round(float(roc_auc_score(labels[name], scores[name])), 4),
            "auroc_fused_set_held_out": round(float(roc_auc_score(labels[name], held)), 4),
            "ba_at_answer_threshold": round(balanced_accuracy(labels[name], list(passed)), 4),
            "flagged_share": round(float((~passed).mean()), 4),
            "ece": round(expected_calibration_error(list(scores[name]), labels[name]), 4),
        }
    calibrator.meta = {
        "fitted_on": sorted(rows),
        "seed": seed,
        "note": "claim and answer thresholds and coefficients fitted on development data only",
    }
    summary: dict[str, Any] = {"answer_threshold": best[0], "dev_mean_ba": round(best[1], 4)}
    if choice is not None:
        calibrator.meta["inputs"] = choice.name
        summary["inputs"] = choice.name
        summary["inputs_held_out_auroc"] = choice.held_out
    return calibrator, {**summary, "dev": per_set}


def cross_threshold(rows: dict[str, list[dict[str, float]]], labels: dict[str, list[int]]) -> float:
    """The cross-encoder claim threshold with the best mean answer-level balanced accuracy
    over the sets, an answer passing when its weakest claim clears it."""
    best = (0.5, -1.0)
    for threshold in np.round(np.arange(0.02, 0.96, 0.01), 2):
        logit = math.log(threshold / (1 - threshold))
        mean = float(
            np.mean(
                [
                    balanced_accuracy(
                        labels[n], [r.get("ce_min_logit", 0.0) >= logit for r in rows[n]]
                    )
                    for n in rows
                ]
            )
        )
        if mean > best[1]:
            best = (float(threshold), mean)
    return best[0]


def refit_fusion(
    root: Path,
    work: Path,
    seed: int = 0,
    per_nli: int = 6000,
    progress: Progress | None = None,
    cross: CrossEncoder | None = None,
    dev_limit: int = 0,
) -> TrainingResult:
    """Keep the packaged head and claim threshold; refit only the fused calibration: its
    inputs chosen and its weights fitted on cross-fitted development rows (:func:`cross_fit`),
    or, when ``cross`` is given, over the cross-encoder's claim scores too
    (:data:`CROSS_FUSED_FEATURES`, not cross-fitted); ``dev_limit`` > 0 fits on a seeded
    sample of at most that many answers per development set."""
    report = progress or _quiet
    packaged = Calibrator.load()
    checker = GroundingChecker()
    if cross is not None:
        reader = Calibrator(CROSS_FUSED_FEATURES, claim_threshold=packaged.claim_threshold)
        reader.coef_, reader.intercept_ = [0.0] * len(CROSS_FUSED_FEATURES), 0.0
        checker = GroundingChecker(calibrator=reader, cross=cross)
    head = checker.model.head
    dev = development(root, per_nli, seed)
    if dev_limit > 0:
        dev = {k: random.Random(seed).sample(v, min(dev_limit, len(v))) for k, v in dev.items()}
    threshold = packaged.claim_threshold
    if cross is not None:
        calibrator, fusion = fit_fusion(
            checker, work, dev, seed, report, CROSS_FUSED_FEATURES, threshold
        )
    else:
        rows = {n: fusion_rows(checker, work, n, items, report) for n, items in dev.items()}
        claims = {n: cached(work, n, checker, answer_items(items), report)
                  for n, items in dev.items()}  # fmt: skip
        train_set = training_set(root, work, checker, per_nli, seed, report)
        hidden = int(head.arrays["w1"].shape[1])
        rows = cross_fit(rows, claims, train_set, seed, hidden, threshold)
        labels = {name: [i.label for i in items] for name, items in dev.items()}
        calibrator, fusion = fit_calibration(rows, labels, seed, claim_threshold=threshold)
    metrics = {"seed": seed, "claim_threshold": threshold, "dev_limit": dev_limit,
               "cross_threshold": calibrator.cross_threshold, **fusion}  # fmt: skip
    return TrainingResult(head, threshold, metrics, calibrator.to_json())


def write(result: TrainingResult, out: Path, with_head: bool = True) -> list[Path]:
    """Save the head (unless ``with_head`` is False), the calibration and the metrics into
    ``out``; returns the paths."""

    out.mkdir(parents=True, exist_ok=True)
    head = out / head_path().name
    if with_head:
        result.head.save(head, threshold=result.threshold)
    calibration = out / "calibration.json"
    calibration.write_text(json.dumps(result.calibration, indent=2) + "\n")
    metrics = out / "support-training.json"
    metrics.write_text(json.dumps(result.metrics, indent=2) + "\n")
    return [head, calibration, metrics] if with_head else [calibration, metrics]
