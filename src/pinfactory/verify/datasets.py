"""The public grounding data the support model is trained, tuned and measured on.

Every loader reads the upstream files as published (``shared/data/grounding`` and
``shared/data/halueval``; see that folder's README for sources and licences) and
returns :class:`Item` objects: an answer, its evidence, a 0/1 label (1 = supported or
consistent) and where it came from. Nothing here is shipped data: only paths.

Roles (``pinfactory verify train`` keeps them apart):

- **train**: FEVER-NLI and MNLI (DocNLI's binary versions, sampled), Factcheck-GPT
  claim-vs-web-evidence stance, SummEdits except the held-out domains;
- **dev** (thresholds, calibration, model choice): WiCE dev, SummEdits' held-out
  domains (:data:`DEV_DOMAINS`);
- **report** (never tuned on): WiCE test, the SummaC subsets, HaluEval QA.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pinfactory.verify.claims import split_sentences

DEV_DOMAINS = ("news", "sales_email")
"""SummEdits domains held out of training for development (thresholds, calibration)."""

SUMMAC = ("factcc", "summeval", "xsumfaith", "polytope")
WICE_SUPPORTED = "supported"  # partially_supported and not_supported count as 0


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled answer: ``answer`` (one or more sentences), ``evidence`` (documents
    or sentences), ``label`` 1 = supported/consistent, 0 = not; ``source`` the data set.

    ``sentence_labels`` (SummEdits training only): a 0/1 label per sentence of the
    answer, when the data says which sentence was edited."""

    answer: str
    evidence: tuple[str, ...]
    label: int
    source: str
    question: str = ""
    sentence_labels: tuple[tuple[str, int], ...] = field(default_factory=tuple)


def data_root(start: Path | None = None) -> Path:
    """``shared/data`` in the nearest folder above ``start`` (default: this file) that has
    one; raises FileNotFoundError naming where it looked."""
    here = (start or Path(__file__)).resolve()
    for parent in [here, *here.parents]:
        candidate = parent / "shared" / "data"
        if (candidate / "grounding").is_dir():
            return candidate
    raise FileNotFoundError(f"no shared/data/grounding above {here}")


HELD_OUT_NLI = 300
"""FEVER-NLI and MNLI pairs past the training sample, kept for development."""
HELD_OUT_SETS = ("fever-heldout", "mnli-heldout")
DEV_KINDS: dict[str, tuple[str, ...]] = {
    "wice-dev": ("factcheck-gpt",),
    "summedits-news": ("summedits-",),
    "summedits-sales_email": ("summedits-",),
    "fever-heldout": ("FEVER-NLI",),
    "mnli-heldout": ("MNLI",),
}
"""Per development set, the training sources (prefixes of ``Item.source``) of the same kind:
WiCE's claims against web evidence are Factcheck-GPT's kind, a held-out SummEdits domain is
every SummEdits domain's. The fused calibration reads each development set's claim scores
from a head trained without them, as the shipped head will score a kind it never saw."""


def same_kind(dev_set: str, source: str) -> bool:
    """Whether training ``source`` is of ``dev_set``'s kind (:data:`DEV_KINDS`; a set not
    listed has no kind in the training data)."""
    return source.startswith(DEV_KINDS.get(dev_set, ()))


def _docnli(root: Path, name: str, limit: int, seed: int, skip: int = 0) -> list[Item]:
    csv.field_size_limit(sys.maxsize)
    rows: list[Item] = []
    folder = root / "grounding" / "docnli" / "Data" / name
    for split in ("dev.txt", "test.txt"):
        with (folder / split).open(encoding="utf-8") as handle:
            for line in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(line) != 3 or line[0] not in ("entailment", "not_entailment"):
                    continue
                label = int(line[0] == "entailment")
                rows.append(Item(line[2], (line[1],), label, name.removeprefix("binary-")))
    random.Random(seed).shuffle(rows)
    return rows[skip : skip + limit]


def fever(root: Path, limit: int = 6000, seed: int = 0) -> list[Item]:
    """FEVER claims against Wikipedia passages (pre-tokenised text), sampled."""
    return _docnli(root, "binary-FEVER-NLI", limit, seed)


def mnli(root: Path, limit: int = 6000, seed: int = 0) -> list[Item]:
    """MNLI hypotheses against premises (many genres), sampled."""
    return _docnli(root, "binary-MNLI", limit, seed)


def factcheck(root: Path) -> list[Item]:
    """Factcheck-GPT: ChatGPT claims against web evidence; only complete support is 1."""
    path = (
        root / "grounding" / "factcheck-gpt" / "subtasks" / "subtask3_claim_evidence_stance.jsonl"
    )
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        label = int(row["stance"] == "completely-support")
        items.append(Item(row["claim"], (row["evidence"],), label, "factcheck-gpt"))
    return items


def summedits_domains(root: Path) -> list[str]:
    folder = root / "grounding" / "summedits" / "data" / "summedits"
    return sorted(p.stem.removeprefix("summedits_") for p in folder.glob("summedits_*.json"))


def summedits(root: Path, domains: tuple[str, ...] | list[str]) -> list[Item]:
    """SummEdits summaries (label 1 = consistent); each item knows which of its sentences
    were edited (those not in the original summary), for sentence-level training."""

    folder = root / "grounding" / "summedits" / "data" / "summedits"
    items = []
    for domain in domains:
        for row in json.loads((folder / f"summedits_{domain}.json").read_text(encoding="utf-8")):
            label = int(str(row["label"]) == "1")
            original = set(split_sentences(row.get("original_summary", "")))
            sentences = split_sentences(row["summary"])
            per_sentence = tuple((s, 1 if label or s in original else 0) for s in sentences)
            items.append(
                Item(row["summary"], (row["doc"],), label, f"summedits-{domain}", "", per_sentence)
            )
    return items


def wice(root: Path, split: str) -> list[Item]:
    """WiCE claims against the cited web page's sentences; 1 = fully supported."""
    path = (
        root / "grounding" / "wice" / "data" / "entailment_retrieval" / "claim" / f"{split}.jsonl"
    )
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        label = int(row["label"] == WICE_SUPPORTED)
        items.append(Item(row["claim"], tuple(row["evidence"]), label, f"wice-{split}"))
    return items


def summac(root: Path, name: str) -> list[Item]:
    """One SummaC subset: summaries (or summary sentences) against news documents."""
    data = json.loads((root / "grounding" / "summac" / "data" / f"{name}.json").read_text())
    return [
        Item(row["claim"], (row["document"],), int(row["label"]), f"summac-{name}")
        for row in data.values()
    ]


def halueval(root: Path, name: str) -> list[Item]:
    """HaluEval QA: each question's right and hallucinated answer against its knowledge."""
    items = []
    for line in (root / "halueval" / f"{name}_data.json").read_text().splitlines():
        row = json.loads(line)
        for answer, label in ((row["right_answer"], 1), (row["hallucinated_answer"], 0)):
            items.append(
                Item(answer, (row["knowledge"],), label, f"halueval-{name}", row["question"])
            )
    return items


def development(root: Path, per_nli: int = 6000, seed: int = 0) -> dict[str, list[Item]]:
    """The development sets: thresholds and calibration are fitted here only. Besides
    WiCE dev and the held-out SummEdits domains, :data:`HELD_OUT_NLI` FEVER-NLI and MNLI
    pairs that come after the ``per_nli`` training sample (same ``seed``)."""
    sets = {"wice-dev": wice(root, "dev")}
    for domain in DEV_DOMAINS:
        sets[f"summedits-{domain}"] = summedits(root, [domain])
    for name in ("FEVER-NLI", "MNLI"):
        held = _docnli(root, f"binary-{name}", HELD_OUT_NLI, seed, skip=per_nli)
        sets[HELD_OUT_SETS[name == "MNLI"]] = [
            Item(i.answer, i.evidence, i.label, f"{i.source}-heldout") for i in held
        ]
    return sets


def report(root: Path) -> dict[str, list[Item]]:
    """The report sets: measured, never tuned on."""
    sets = {"wice-test": wice(root, "test")}
    for name in SUMMAC:
        sets[f"summac-{name}"] = summac(root, name)
    for name in ("qa_one-turn", "qa_multi-turn"):
        sets[f"halueval-{name}"] = halueval(root, name)
    return sets


def training(root: Path, per_nli: int = 6000, seed: int = 0) -> list[Item]:
    """The training items: FEVER-NLI, MNLI (``per_nli`` each), Factcheck-GPT, SummEdits'
    training domains."""
    domains = [d for d in summedits_domains(root) if d not in DEV_DOMAINS]
    return [
        *fever(root, per_nli, seed),
        *mnli(root, per_nli, seed),
        *factcheck(root),
        *summedits(root, domains),
    ]


def claim_pairs(items: list[Item]) -> Iterator[tuple[str, tuple[str, ...], int, str]]:
    """Sentence-level training pairs: (claim, evidence, label, source). Summaries with
    per-sentence labels give one pair per distinct (sentence, document)."""
    seen: set[tuple[str, str]] = set()
    for item in items:
        if not item.sentence_labels:
            yield item.answer, item.evidence, item.label, item.source
            continue
        for sentence, label in item.sentence_labels:
            key = (sentence, item.evidence[0])
            if key not in seen:
                seen.add(key)
                yield sentence, item.evidence, label, item.source
