"""Benchmark data as :class:`RoutingTable` train/test splits.

Each loader reads public data from the evaluation data folder (``root``,
default ``../shared/data``) and returns a :class:`Splits`. Prompts are rows,
members columns, quality in [0, 1], cost in USD per query.

- ``routerbench``: 11 models, 0/1 correctness and real per-query costs; the
  upstream train/test split. Rows with a missing score are dropped.
- ``routellm_mmlu``: Mixtral-8x7B vs GPT-4-1106 on MMLU; costs from token
  counts and an editable price table; RouteLLM's contaminated prompts are
  excluded; a deterministic hashed split.
- ``routellm_mt_bench``: the same two models, GPT-4 judge scores 1-10 mapped
  to (score - 1) / 9, one row per question turn; split by question.
- ``clinc150``: intents grouped into 10 domain specialists plus a
  ``generalist`` for out-of-scope queries; quality 1 on the right member.
- ``log``: the generic format of :mod:`pinfactory.routing.log_table`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pinfactory.errors import DatasetError
from pinfactory.routing.log_table import load_log, number, split_marks
from pinfactory.routing.table import RoutingTable

ROUTERBENCH_MODELS = (
    "WizardLM/WizardLM-13B-V1.2",
    "claude-instant-v1",
    "claude-v1",
    "claude-v2",
    "gpt-3.5-turbo-1106",
    "gpt-4-1106-preview",
    "meta/code-llama-instruct-34b-chat",
    "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
)
ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_STRONG = "gpt-4-1106-preview"

PRICES_USD_PER_MTOK: dict[str, tuple[float, float]] = {
    # (input, output) USD per million tokens, as RouteLLM priced them
    ROUTELLM_WEAK: (0.24, 0.24),
    ROUTELLM_STRONG: (10.0, 30.0),
}
"""The default price table; pass ``prices`` (a YAML file or mapping) to change it."""

GENERALIST = "generalist"


@dataclass(frozen=True)
class Splits:
    train: RoutingTable
    test: RoutingTable


def default_root() -> Path:
    """``$PINFACTORY_DATA``, else the nearest ``shared/data`` beside the working directory
    or one of its parents (``../shared/data`` from a checkout)."""
    if os.environ.get("PINFACTORY_DATA"):
        return Path(os.environ["PINFACTORY_DATA"])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return here.parent / "shared" / "data"


def in_test_split(key: str, test_share: float) -> bool:
    """A stable split: the same key lands on the same side on every machine."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_share


def _split(table: RoutingTable, keys: Sequence[str], test_share: float) -> Splits:
    test = np.array([in_test_split(k, test_share) for k in keys])
    return Splits(
        train=table.subset(np.flatnonzero(~test)),
        test=table.subset(np.flatnonzero(test)),
    )


def routerbench(root: Path) -> Splits:
    """The RouterBench subset (ARC-Challenge, MBPP, Winogrande), upstream split."""
    folder = root / "routerbench"
    return Splits(
        train=_routerbench_split(folder, "train"),
        test=_routerbench_split(folder, "test"),
    )


def _routerbench_split(folder: Path, split: str) -> RoutingTable:
    files = sorted(folder.glob(f"*_{split}.csv"))
    if not files:
        raise DatasetError(f"{folder}: no *_{split}.csv files")
    csv.field_size_limit(sys.maxsize)
    ids: list[str] = []
    prompts: list[str] = []
    labels: list[str] = []
    quality: list[list[float]] = []
    cost: list[list[float]] = []
    for path in files:
        needed = ["sample_id", "prompt", "eval_name"]
        needed += [c for m in ROUTERBENCH_MODELS for c in (m, f"{m}|total_cost")]
        for row, record in _csv_records(path, needed):
            scores = [record[m] for m in ROUTERBENCH_MODELS]
            costs = [record[f"{m}|total_cost"] for m in ROUTERBENCH_MODELS]
            if any(v.strip() == "" for v in scores + costs):
                continue  # incomplete upstream row: not every model was scored
            q = [number(path, row, m, v) for m, v in zip(ROUTERBENCH_MODELS, scores, strict=True)]
            c = [
                number(path, row, f"{m}|total_cost", v)
                for m, v in zip(ROUTERBENCH_MODELS, costs, strict=True)
            ]
            if any(x < 0 for x in c):
                raise DatasetError(f"{path}, row {row}: negative cost")
            ids.append(record["sample_id"])
            prompts.append(record["prompt"])
            labels.append(record["eval_name"])
            quality.append(q)
            cost.append(c)
    _no_duplicates(folder, ids)
    return RoutingTable(
        ids=ids,
        prompts=prompts,
        members=list(ROUTERBENCH_MODELS),
        quality=np.clip(np.array(quality), 0.0, 1.0),
        cost=np.array(cost),
        labels=labels,
        name="routerbench",
        meta={"split": split},
    )


def load_prices(prices: str | Path | Mapping[str, Any] | None) -> dict[str, tuple[float, float]]:
    """The price table: member -> (input, output) USD per million tokens."""
    table = dict(PRICES_USD_PER_MTOK)
    if prices is None:
        return table
    source = str(prices) if not isinstance(prices, Mapping) else "prices"
    raw = prices if isinstance(prices, Mapping) else yaml.safe_load(Path(prices).read_text())
    if not isinstance(raw, Mapping):
        raise DatasetError(f"{source}: expected a mapping of member -> {{input, output}}")
    for member, entry in raw.items():
        if not isinstance(entry, Mapping) or set(entry) != {"input", "output"}:
            raise DatasetError(
                f"{source}: '{member}' needs exactly 'input' and 'output' (USD per Mtok)"
            )
        values = (float(entry["input"]), float(entry["output"]))
        if min(values) < 0:
            raise DatasetError(f"{source}: '{member}' has a negative price")
        table[str(member)] = values
    return table


def token_cost(
    prices: Mapping[str, tuple[float, float]], member: str, tin: int, tout: int
) -> float:
    if member not in prices:
        raise DatasetError(f"no price for member '{member}'; add it to the price table")
    price_in, price_out = prices[member]
    return (price_in * tin + price_out * tout) / 1e6


def tokens(text: str) -> int:
    """About four characters a token, as the gateway estimates it."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def routellm_mmlu(
    root: Path,
    *,
    prices: str | Path | Mapping[str, Any] | None = None,
    output_tokens: int = 4,
    test_share: float = 0.5,
) -> Splits:
    """MMLU correctness of Mixtral-8x7B and GPT-4; ``output_tokens`` per answer (a letter)."""
    folder = root / "routellm" / "mmlu"
    files = sorted(folder.glob("mmlu_*.csv"))
    if not files:
        raise DatasetError(f"{folder}: no mmlu_*.csv files")
    contaminated = _contaminated(folder / "contaminated_prompts.jsonl")
    price = load_prices(prices)
    members = [ROUTELLM_WEAK, ROUTELLM_STRONG]
    ids: list[str] = []
    prompts: list[str] = []
    labels: list[str] = []
    quality: list[list[float]] = []
    cost: list[list[float]] = []
    for path in files:
        subject = path.stem.removeprefix("mmlu_")
        for row, record in _csv_records(path, ["prompt", *members]):
            prompt = record["prompt"]
            if prompt.strip() in contaminated:
                continue
            q = [_truth(path, row, m, record[m]) for m in members]
            tin = tokens(prompt)
            ids.append(f"{subject}-{row}")
            prompts.append(prompt)
            labels.append(subject)
            quality.append(q)
            cost.append([token_cost(price, m, tin, output_tokens) for m in members])
    table = RoutingTable(
        ids=ids,
        prompts=prompts,
        members=members,
        quality=np.array(quality),
        cost=np.array(cost),
        labels=labels,
        name="routellm_mmlu",
        meta={"weak": ROUTELLM_WEAK, "strong": ROUTELLM_STRONG},
    )
    return _split(table, prompts, test_share)


def _csv_records(path: Path, needed: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, record) pairs of a CSV file that has every ``needed`` column."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}")
        yield from enumerate(reader, start=2)


def _truth(path: Path, row: int, field: str, value: str) -> float:
    text = value.strip().lower()
    if text in ("true", "1", "1.0"):
        return 1.0
    if text in ("false", "0", "0.0"):
        return 0.0
    raise DatasetError(f"{path}, row {row}: {field} {value!r} is not True/False")


def _contaminated(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    found = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            found.add(str(record.get("eval_prompt", "")).strip())
    return found


_ANSWER = re.compile(
    r"### Assistant A:\n(.*?)(?=\n\n### User:|\n\n<\|The End of Assistant A)"
    r"|\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]",
    re.DOTALL,
)


def routellm_mt_bench(
    root: Path,
    *,
    prices: str | Path | Mapping[str, Any] | None = None,
    test_share: float = 0.5,
) -> Splits:
    """MT-Bench judge scores; costs from the prompt and the judged answer's token counts."""
    folder = root / "routellm" / "mt_bench"
    questions = {}
    for line in (folder / "question.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line)
            questions[str(q["question_id"])] = q["turns"]
    price = load_prices(prices)
    members = [ROUTELLM_WEAK, ROUTELLM_STRONG]
    scores: dict[tuple[str, int, str], tuple[float, int]] = {}
    path = folder / "judgements.jsonl"
    for row, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        judged = json.loads(line)
        score = number(path, row, "score", judged["score"])
        if not 1 <= score <= 10:
            continue  # -1 marks a judge failure upstream
        answers = [a or b for a, b in _ANSWER.findall(judged["user_prompt"])]
        turn = int(judged["turn"])
        answer = answers[min(turn, len(answers)) - 1] if answers else ""
        key = (str(judged["question_id"]), turn, str(judged["model"]))
        scores[key] = ((score - 1) / 9, tokens(answer))
    ids, prompts, keys, quality, cost = [], [], [], [], []
    for qid, turns in questions.items():
        for turn in (1, 2):
            found = [scores.get((qid, turn, m)) for m in members]
            if any(f is None for f in found) or turn > len(turns):
                continue
            text = "\n\n".join(turns[:turn])
            tin = tokens(text)
            ids.append(f"{qid}-{turn}")
            prompts.append(text)
            keys.append(qid)
            quality.append([f[0] for f in found if f is not None])
            cost.append(
                [
                    token_cost(price, m, tin, f[1])
                    for m, f in zip(members, found, strict=True)
                    if f is not None
                ]
            )
    table = RoutingTable(
        ids=ids,
        prompts=prompts,
        members=members,
        quality=np.array(quality),
        cost=np.array(cost),
        name="routellm_mt_bench",
        meta={"weak": ROUTELLM_WEAK, "strong": ROUTELLM_STRONG},
    )
    return _split(table, keys, test_share)


def clinc150(
    root: Path,
    *,
    include_oos: bool = True,
    specialist_cost: float = 0.0002,
    generalist_cost: float = 0.002,
) -> Splits:
    """CLINC150: each domain is a specialist member; out-of-scope goes to the generalist.

    ``labels`` hold the intent; quality is 1 for the member owning that intent.
    Train is ``train`` (+ ``oos_train``), test is ``test`` (+ ``oos_test``).
    """
    folder = root / "clinc150"
    data = json.loads((folder / "data_full.json").read_text(encoding="utf-8"))
    domains: dict[str, list[str]] = json.loads((folder / "domains.json").read_text())
    owner = {intent: domain for domain, intents in domains.items() for intent in intents}
    members = [*domains, GENERALIST] if include_oos else list(domains)
    prices = [specialist_cost] * len(domains) + ([generalist_cost] if include_oos else [])

    def table(parts: Sequence[str], split: str) -> RoutingTable:
        rows = [pair for part in parts for pair in data[part]]
        if not include_oos:
            rows = [r for r in rows if r[1] != "oos"]
        quality = np.zeros((len(rows), len(members)))
        for i, (_, intent) in enumerate(rows):
            target = owner.get(intent, GENERALIST)
            if target not in members:
                raise DatasetError(f"clinc150: intent '{intent}' belongs to no member")
            quality[i, members.index(target)] = 1.0
        return RoutingTable(
            ids=[f"{split}-{i}" for i in range(len(rows))],
            prompts=[text for text, _ in rows],
            members=members,
            quality=quality,
            cost=np.tile(np.array(prices), (len(rows), 1)),
            labels=[intent for _, intent in rows],
            name="clinc150",
            meta={"domains": json.dumps(owner)},
        )

    oos_train = ["oos_train"] if include_oos else []
    oos_test = ["oos_test"] if include_oos else []
    return Splits(
        train=table(["train", *oos_train], "train"), test=table(["test", *oos_test], "test")
    )


def generic_log(root: Path, *, path: str, test_share: float = 0.3) -> Splits:
    """The generic log; its ``split`` column when given, else a hashed split by id."""
    file = Path(path)
    table = load_log(file if file.is_absolute() else root / file)
    marks = split_marks(table)
    if marks is not None:
        test = np.array([m == "test" for m in marks])
        return Splits(table.subset(np.flatnonzero(~test)), table.subset(np.flatnonzero(test)))
    return _split(table, table.ids, test_share)


def _no_duplicates(source: Path, ids: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for row, pid in enumerate(ids, start=1):
        if pid in seen:
            raise DatasetError(f"{source}: duplicate id '{pid}' (records {seen[pid]} and {row})")
        seen[pid] = row


LOADERS: dict[str, Callable[..., Splits]] = {
    "routerbench": routerbench,
    "routellm_mmlu": routellm_mmlu,
    "routellm_mt_bench": routellm_mt_bench,
    "clinc150": clinc150,
    "log": generic_log,
}


def load(name: str, root: Path | None = None, **options: Any) -> Splits:
    """Load a dataset by loader name; ``options`` go to the loader."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset loader '{name}'; allowed: {', '.join(LOADERS)}"
        ) from None
    try:
        return loader(root or default_root(), **options)
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset '{name}': {exc.filename} not found") from None
    except TypeError as exc:
        raise DatasetError(f"dataset '{name}': bad options {sorted(options)}: {exc}") from None
