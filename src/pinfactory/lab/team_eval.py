"""Routing accuracy of a team file on a labelled set of requests (single turns or conversations).

The set is a YAML list (``lab/default_team/queries.yaml``): each item has ``text`` (one user
turn) or ``messages`` (a conversation, routed as the gateway sees it), ``expect`` (the member
that should answer) and a ``category``. Every member of the team is enabled (placeholders
satisfy ``requires_env``), so a route to a paid member counts as it would in production.

:func:`split` deals the items into a tuning part and a reporting part by a seeded shuffle
within each category, so a team's routes can be tuned on one half and judged on the other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from pinfactory.errors import DatasetError
from pinfactory.lab.simulate import load_policy
from pinfactory.request import Message, Request
from pinfactory.routing import build_router


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class Item(BaseModel):
    """One labelled request."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1)
    expect: str = Field(min_length=1, description="the member that should answer")
    text: str | None = None
    messages: list[Turn] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Item:
        if (self.text is None) == (self.messages is None):
            raise ValueError("give `text` or `messages`, not both")
        return self

    def request(self) -> Request:
        if self.text is not None:
            return Request.from_text(self.text)
        assert self.messages is not None
        return Request(messages=tuple(Message(m.role, m.content) for m in self.messages))

    @property
    def shown(self) -> str:
        """The last user turn, marked when it continues a conversation."""
        if self.text is not None:
            return self.text
        assert self.messages is not None
        last = [m.content for m in self.messages if m.role == "user"][-1]
        return f"(follow-up) {last}"


@dataclass(frozen=True)
class Miss:
    item: Item
    got: str
    reason: str


@dataclass(frozen=True)
class Score:
    """Accuracy overall and per category, and what was routed wrong."""

    total: int
    right: int
    by_category: dict[str, tuple[int, int]]
    misses: list[Miss]

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0


def load_items(path: Path) -> list[Item]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML: {exc}") from None
    try:
        return TypeAdapter(list[Item]).validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DatasetError(f"{path}: item {where}: {first['msg']}") from None


def split(items: Sequence[Item], seed: int = 0) -> tuple[list[Item], list[Item]]:
    """(tuning half, reporting half): each category shuffled by ``seed`` and cut in two."""
    rng = np.random.default_rng(seed)
    tune: list[Item] = []
    report: list[Item] = []
    for category in dict.fromkeys(i.category for i in items):
        mine = [i for i in items if i.category == category]
        order = rng.permutation(len(mine))
        half = len(mine) // 2
        tune += [mine[k] for k in order[:half]]
        report += [mine[k] for k in order[half:]]
    return tune, report


def evaluate(team_file: Path, items: Sequence[Item]) -> Score:
    """Route every item with the team's router (every member enabled) and count the right ones."""
    router = build_router(load_policy(team_file))
    right = 0
    per: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    misses: list[Miss] = []
    for item in items:
        decision = router.decide(item.request())
        per[item.category] += 1
        if decision.first == item.expect:
            right += 1
            hits[item.category] += 1
        else:
            misses.append(Miss(item, decision.first, decision.reason))
    by_category = {c: (hits[c], per[c]) for c in per}
    return Score(len(items), right, by_category, misses)
