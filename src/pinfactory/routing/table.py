"""The one format routers learn from and the lab replays: prompts x members.

Each row is a prompt; each column a member; ``quality`` holds how well that
member answered (in [0, 1]) and ``cost`` what the answer cost in USD. Costs
here are analysis data (means over thousands of replayed queries), kept as
float64 arrays; money that is charged lives in the ledger as Decimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RoutingTable:
    ids: list[str]
    prompts: list[str]
    members: list[str]
    quality: Floats
    cost: Floats
    labels: list[str] | None = None
    name: str = "table"
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m = len(self.prompts), len(self.members)
        if self.quality.shape != (n, m) or self.cost.shape != (n, m):
            raise ValueError(
                f"quality {self.quality.shape} and cost {self.cost.shape} must both be ({n}, {m})"
            )
        if len(self.ids) != n or (self.labels is not None and len(self.labels) != n):
            raise ValueError("ids and labels must have one entry per prompt")

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> RoutingTable:
        index = np.asarray(rows, dtype=np.int64)
        return RoutingTable(
            ids=[self.ids[i] for i in index],
            prompts=[self.prompts[i] for i in index],
            members=list(self.members),
            quality=self.quality[index],
            cost=self.cost[index],
            labels=[self.labels[i] for i in index] if self.labels is not None else None,
            name=self.name,
            meta=dict(self.meta),
        )

    def oracle(self) -> npt.NDArray[np.int64]:
        """Per prompt, the cheapest member among those with the best quality."""
        best = self.quality.max(axis=1, keepdims=True)
        masked = np.where(self.quality >= best, self.cost, np.inf)
        return np.asarray(masked.argmin(axis=1), dtype=np.int64)
