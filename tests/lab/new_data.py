"""Generic logs shaped like the data a new user brings: made here from shared/data, not shipped.

- :func:`intent_log`: ``groups`` equal-cost specialists over CLINC150's intents (intents
  dealt round-robin after sorting, so no group is a CLINC domain), no out-of-scope class,
  a ``split`` column.
- :func:`maths_log`: two models on MMLU's maths and physics subjects (Mixtral cheap, GPT-4
  dear and better).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pinfactory.lab import datasets

MATHS = (  # high_school_mathematics is left out: GPT-4 scores 0.02 there in RouteLLM's data
    "abstract_algebra",
    "college_mathematics",
    "elementary_mathematics",
    "high_school_statistics",
    "high_school_physics",
    "college_physics",
    "conceptual_physics",
)


def intent_log(
    shared: Path, out: Path, groups: int, per_intent: int = 40, test_every: int = 1
) -> Path:
    """A CSV log: one specialist per group of intents; quality 1 on the owner, cost 0.001.
    ``per_intent`` training examples per intent; every ``test_every``-th test prompt."""
    data = json.loads((shared / "clinc150" / "data_full.json").read_text())
    intents = sorted({intent for _, intent in data["train"]})
    owner = {intent: f"spec{i % groups:02d}" for i, intent in enumerate(intents)}
    members = sorted(set(owner.values()))
    rows = []
    for split, source in (("train", "train"), ("test", "test")):
        seen: dict[str, int] = {}
        for n, (text, intent) in enumerate(data[source]):
            seen[intent] = seen.get(intent, 0) + 1
            if split == "train" and seen[intent] > per_intent:
                continue
            if split == "test" and n % test_every:
                continue
            for member in members:
                rows.append(
                    {
                        "id": f"{split}-{n}",
                        "prompt": text,
                        "member": member,
                        "quality": 1.0 if owner[intent] == member else 0.0,
                        "cost_usd": 0.001,
                        "label": intent,
                        "split": split,
                    }
                )
    return _write(out, rows)


def maths_log(shared: Path, out: Path) -> Path:
    """A CSV log of MMLU's maths questions: Mixtral vs GPT-4 at RouteLLM's prices."""
    splits = datasets.load("routellm_mmlu", shared)
    rows = []
    for split, table in (("train", splits.train), ("test", splits.test)):
        for i, pid in enumerate(table.ids):
            if table.labels is None or table.labels[i] not in MATHS:
                continue
            for j, member in enumerate(table.members):
                rows.append(
                    {
                        "id": pid,
                        "prompt": table.prompts[i],
                        "member": member,
                        "quality": table.quality[i, j],
                        "cost_usd": table.cost[i, j],
                        "label": table.labels[i],
                        "split": split,
                    }
                )
    return _write(out, rows)


def _write(out: Path, rows: list[dict[str, object]]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out
