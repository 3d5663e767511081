"""The live contextual-bandit router (``routing.kind: bandit``): learns from outcomes as it serves.

```yaml
routing:
  kind: bandit
  fallback: local
  members: [local, frontier]     # the arms (default: every enabled member)
  lam: 100                       # reward = quality - lam x cost (quality per USD)
  alpha: 0.5                     # LinUCB's optimism
  epsilon: 0.1                   # exploration rate while the unit may explore
  explore_share: 0.05            # at most this share of a unit's decisions explore
  sync_s: 2.0                    # how often each worker reads new outcomes
```

Each decision embeds the last user turn, projects it to ``dims`` features
(:class:`~pinfactory.routing.bandit.LinearBandit`, the same random projection in every
worker: it comes from ``seed``) and picks LinUCB's optimistic member, or, with
probability ``epsilon`` while the unit is under its exploration share, a member drawn
uniformly. The :class:`~pinfactory.routing.base.Decision` carries its ``propensity``
and the ``context`` features; both are sealed in the request's ``decision`` audit entry.

Learning: the ledger is the model's store. The labelled outcomes
(:mod:`pinfactory.feedback`: user feedback, verifier verdicts, reviewers' approvals and
overrides) are sealed in the audit chain after the decision they judge; each worker's
:meth:`BanditRouter.learn` reads the chain entries sealed since its last read
(decisions, responses, labels) and folds each label into the arm that was chosen, with
reward ``quality - lam x cost`` (the request's actual cost). Ridge regression
sums are order-free, so every worker reading the same ledger holds the same model: a
second gateway on the same SQLite file or PostgreSQL database learns the first one's
feedback within ``sync_s`` (the feedback endpoint folds it in at once in the worker that
took it). Exploration counts come from the same decisions, so the per-unit bound holds
across workers (up to what the other workers decided since the last read).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pinfactory.embeddings import Encoder, get_encoder
from pinfactory.errors import TeamFileError
from pinfactory.feedback import LABEL_KINDS, label_of
from pinfactory.ledger.base import AuditRecord, Ledger
from pinfactory.request import Request
from pinfactory.routing.bandit import LinearBandit, UnitBudget
from pinfactory.routing.base import (
    Decision,
    MemberTable,
    check_encoder,
    member_cost,
    member_tier,
)

if TYPE_CHECKING:
    from pinfactory.tiers import RouterContext

SCANNED = ("request", "decision", "response", *LABEL_KINDS)
REMEMBERED = 100_000
"""Decisions kept in memory awaiting a label; an older one is read back from the ledger."""


@runtime_checkable
class Learner(Protocol):
    """A router that learns from the labelled outcomes in the ledger while it serves."""

    async def learn(self, ledger: Ledger) -> int:
        """Fold in every label sealed since the last call; returns how many were new."""

    def learning(self, ledger: Ledger) -> Any:
        """An async context that keeps learning in the background while it is open."""


class BanditConfig(BaseModel):
    """``routing:`` of a team whose router is ``kind: bandit``."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "bandit"
    fallback: str
    members: list[str] | None = None
    lam: float = Field(default=0.0, ge=0)
    alpha: float = Field(default=0.5, ge=0)
    epsilon: float = Field(default=0.1, ge=0, le=1)
    explore_share: float = Field(default=0.05, ge=0, le=1)
    dims: int = Field(default=32, ge=1, le=512)
    ridge: float = Field(default=1.0, gt=0)
    encoder: str = "minilm-static"
    seed: int = 0
    sync_s: float = Field(default=2.0, gt=0)


@dataclass(slots=True)
class Chosen:
    """A decision of this router seen in the chain, awaiting its labels."""

    member: int
    context: np.ndarray[Any, np.dtype[np.float64]]
    cost_usd: float = 0.0


class BanditRouter:
    """LinUCB over the team's members, learning from the ledger; see the module docstring."""

    kind = "bandit"

    def __init__(
        self,
        config: BanditConfig,
        members: MemberTable,
        encoder: Encoder | None = None,
    ) -> None:
        arms = config.members or list(members)
        unknown = [m for m in arms if m not in members]
        if unknown:
            raise TeamFileError(
                f"bandit router: unknown member(s) {', '.join(unknown)}; "
                f"members: {', '.join(members)}"
            )
        check_encoder(config.encoder)
        self.config = config
        self.members = members
        self.arms = arms
        self.fallback = config.fallback
        self._encoder = encoder
        self._bandit: LinearBandit | None = None
        self.cursor_ = 0
        self.learned_ = 0
        self._chosen: OrderedDict[str, Chosen | None] = OrderedDict()
        self._counted: dict[str, UnitBudget] = {}  # from the chain: every worker's decisions
        self._pending: dict[str, tuple[str, bool]] = {}  # ours, not yet read back
        self._units: OrderedDict[str, str] = OrderedDict()  # request -> unit, until decided
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config: dict[str, Any], context: RouterContext) -> BanditRouter:
        return cls(BanditConfig.model_validate(config), context.members)

    # -- deciding ---------------------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = get_encoder(self.config.encoder)
        return self._encoder

    @property
    def bandit(self) -> LinearBandit:
        """The model (built on first use: the encoder fixes its input size)."""
        if self._bandit is None:
            dims = int(self.encoder.encode(["hello"]).shape[1])
            c = self.config
            self._bandit = LinearBandit(
                list(self.arms), dims, dims=c.dims, alpha=c.alpha, epsilon=c.epsilon,
                explore_share=c.explore_share, lam=c.lam, ridge=c.ridge, seed=c.seed,
            )  # fmt: skip
            self._bandit.reseed(None)  # exploration differs per worker; the projection not
        return self._bandit

    def decide(self, request: Request) -> Decision:
        bandit = self.bandit
        vector = self.encoder.encode([request.text or " "])[0]
        x = bandit.features(np.asarray(vector, dtype=np.float64)[None, :])[0]
        unit = request.unit
        bandit.budgets[unit] = self._budget(unit)
        choice = bandit.choose_features(x, unit)
        member = self.arms[choice.member]
        explored = choice.member != int(np.argmax(choice.scores))  # a deviation from the best
        self._pending[request.request_id] = (unit, explored)
        if len(self._pending) > REMEMBERED:  # decisions the ledger never sealed
            self._pending.pop(next(iter(self._pending)))
        how = "explored" if explored else "best estimate"
        return Decision(
            member=member,
            reason=(
                f"bandit: '{member}' ({how}; propensity {choice.propensity:.3f}, "
                f"{self.learned_} outcomes learned)"
            ),
            router=self.kind,
            scores=dict(zip(self.arms, choice.scores, strict=True)),
            confidence=choice.propensity,
            estimated_cost_usd=member_cost(self.members, member),
            tier=member_tier(self.members, member),
            propensity=round(choice.propensity, 6),
            context=tuple(round(float(v), 6) for v in x),
        )

    def _budget(self, unit: str) -> UnitBudget:
        counted = self._counted.get(unit, UnitBudget())
        mine = [explored for u, explored in self._pending.values() if u == unit]
        return UnitBudget(counted.decisions + len(mine), counted.explored + sum(mine))

    # -- learning ---------------------------------------------------------------------------

    async def learn(self, ledger: Ledger, page: int = 1000) -> int:
        async with self._lock:  # the background task and the feedback endpoint
            learned = 0
            while True:
                records = await ledger.audit_kinds(SCANNED, self.cursor_, page)
                for record in records:
                    learned += await self._read(ledger, record)
                    self.cursor_ = record.seq
                if len(records) < page:
                    return learned

    async def _read(self, ledger: Ledger, record: AuditRecord) -> int:
        rid = record.request_id
        if record.kind == "request":
            self._units[rid] = str(json.loads(record.body)["payload"].get("unit") or "")
            while len(self._units) > REMEMBERED:
                self._units.popitem(last=False)
            return 0
        if record.kind == "decision":
            self._remember(rid, self._chosen_of(record, self._units.pop(rid, "")))
            return 0
        if record.kind == "response":
            chosen = self._chosen.get(rid)
            if chosen is not None:
                cost = json.loads(record.body)["payload"].get("cost_usd", 0)
                chosen.cost_usd = float(Decimal(str(cost)))
            return 0
        label = label_of(record)
        if label is None:
            return 0
        if rid not in self._chosen:  # decided before the memory's reach: read it back
            self._remember(rid, None)
            for earlier in await ledger.audit(rid):
                if earlier.seq < record.seq and earlier.kind in ("request", "decision", "response"):
                    await self._read(ledger, earlier)
        chosen = self._chosen.get(rid)
        if chosen is None:
            return 0
        bandit = self.bandit
        bandit.learn(chosen.context, chosen.member, bandit.reward(label.quality, chosen.cost_usd))
        self.learned_ += 1
        return 1

    def _chosen_of(self, record: AuditRecord, unit: str) -> Chosen | None:
        """This router's decision in a ``decision`` entry, its unit's budget counted."""
        payload = json.loads(record.body)["payload"]
        context = payload.get("context")
        member = payload.get("member")
        if payload.get("router") != self.kind or not context or member not in self.arms:
            return None
        x = np.asarray(context, dtype=np.float64)
        if x.shape != (self.config.dims + 1,):
            return None  # another configuration's decision
        self._pending.pop(record.request_id, None)
        scores = payload.get("scores") or {}
        explored = bool(scores) and member != max(scores, key=lambda m: scores[m])
        budget = self._counted.setdefault(unit, UnitBudget())
        budget.decisions += 1
        budget.explored += int(bool(explored))
        return Chosen(self.arms.index(member), x)

    def _remember(self, rid: str, chosen: Chosen | None) -> None:
        self._chosen[rid] = chosen
        self._chosen.move_to_end(rid)
        while len(self._chosen) > REMEMBERED:
            self._chosen.popitem(last=False)

    @asynccontextmanager
    async def learning(self, ledger: Ledger) -> AsyncIterator[BanditRouter]:
        """Catch up with the ledger, then keep reading it every ``sync_s`` until closed."""
        await self.learn(ledger)

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.config.sync_s)
                await self.learn(ledger)

        task = asyncio.get_running_loop().create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
