"""A contextual-bandit router that learns from outcomes while it serves.

Each member (arm) keeps a ridge regression of its reward on the prompt's features
(the embedding, reduced by a fixed random projection to ``dims`` numbers, plus a
constant): ``A_m = I * ridge + sum x x^T``, ``b_m = sum r x``. The reward of an
outcome is its quality minus ``lam`` times its cost (USD; ``lam`` in quality per USD,
as for the learned routers). A decision is LinUCB's optimistic choice
``argmax theta_m . x + alpha * sqrt(x^T A_m^-1 x)``, then with probability
``epsilon`` a member drawn uniformly instead (exploration); every decision records
its propensity -- the probability the policy had of choosing the member it chose --
so that logged decisions can be replayed off-policy (:mod:`pinfactory.lab.ope`).

Exploration is bounded per unit: a unit explores at most ``explore_share`` of its
decisions (a running count; once at the bound, the unit gets the greedy choice with
propensity 1 until its share falls back under). :meth:`update` folds in one
outcome without a restart; :meth:`state` / :meth:`from_state` move the model
between processes (the arrays are small: members x dims^2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pinfactory.errors import RoutingError

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Choice:
    """One bandit decision: the member, the probability it had, and whether it explored."""

    member: int
    propensity: float
    explored: bool
    scores: tuple[float, ...]


@dataclass
class UnitBudget:
    decisions: int = 0
    explored: int = 0


@dataclass
class LinearBandit:
    """LinUCB + epsilon exploration over ``members``; see the module docstring."""

    members: list[str]
    input_dims: int
    dims: int = 32
    alpha: float = 0.5
    epsilon: float = 0.05
    explore_share: float = 0.05
    lam: float = 0.0
    ridge: float = 1.0
    seed: int = 0
    budgets: dict[str, UnitBudget] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise RoutingError("a bandit router needs two members or more")
        if not 0 <= self.epsilon <= 1 or not 0 <= self.explore_share <= 1:
            raise RoutingError("epsilon and explore_share must be in [0, 1]")
        rng = np.random.default_rng(self.seed)
        self.projection_ = rng.normal(size=(self.input_dims, self.dims)) / np.sqrt(self.dims)
        k, d = len(self.members), self.dims + 1
        self.a_ = np.tile(np.eye(d) * self.ridge, (k, 1, 1))
        self.b_ = np.zeros((k, d))
        self._rng = rng

    def reseed(self, seed: int | None) -> None:
        """Draw exploration from a new generator (None: from the OS), keeping the projection."""
        self._rng = np.random.default_rng(seed)

    def features(self, vectors: Floats) -> Floats:
        """(n, dims + 1): the projected embedding and a constant."""
        projected = np.asarray(vectors, dtype=np.float64) @ self.projection_
        return np.hstack([projected, np.ones((len(projected), 1))])

    def estimates(self, vectors: Floats) -> tuple[Floats, Floats]:
        """(n, members) mean reward and its uncertainty (the UCB width before ``alpha``)."""
        return self.estimates_of(self.features(vectors))

    def estimates_of(self, x: Floats) -> tuple[Floats, Floats]:
        """:meth:`estimates` from features (:meth:`features`' rows)."""
        inverse = np.linalg.inv(self.a_)
        theta = np.einsum("kij,kj->ki", inverse, self.b_)
        mean = x @ theta.T
        width = np.sqrt(np.einsum("ni,kij,nj->nk", x, inverse, x).clip(min=0))
        return mean, width

    def choose(self, vector: Floats, unit: str = "default") -> Choice:
        """Choose for one prompt embedding, within ``unit``'s exploration budget."""
        x = self.features(np.asarray(vector, dtype=np.float64)[None, :])[0]
        return self.choose_features(x, unit)

    def choose_features(self, x: Floats, unit: str = "default") -> Choice:
        """:meth:`choose` from the prompt's features; counts the decision in ``unit``'s budget."""
        mean, width = self.estimates_of(x[None, :])
        scores = (mean + self.alpha * width)[0]
        greedy = int(np.argmax(scores))
        budget = self.budgets.setdefault(unit, UnitBudget())
        k = len(self.members)
        may_explore = budget.explored < self.explore_share * (budget.decisions + 1)
        epsilon = self.epsilon if may_explore else 0.0
        budget.decisions += 1
        if self._rng.random() < epsilon:
            member = int(self._rng.integers(k))
            budget.explored += 1
            explored = True
        else:
            member, explored = greedy, False
        propensity = epsilon / k + (1 - epsilon) * (member == greedy)
        return Choice(member, float(propensity), explored, tuple(float(s) for s in scores))

    def reward(self, quality: float, cost_usd: float) -> float:
        return float(quality - self.lam * cost_usd)

    def update(self, vector: Floats, member: int, quality: float, cost_usd: float) -> None:
        """Fold one outcome into the member's regression."""
        x = self.features(np.asarray(vector, dtype=np.float64)[None, :])[0]
        self.learn(x, member, self.reward(quality, cost_usd))

    def learn(self, x: Floats, member: int, reward: float) -> None:
        """Fold one outcome, given the features the choice was made on, into ``member``."""
        self.a_[member] += np.outer(x, x)
        self.b_[member] += reward * x

    def update_many(
        self, vectors: Floats, members: Sequence[int], quality: Floats, cost: Floats
    ) -> None:
        """Fold in a batch of outcomes (the same as :meth:`update` one by one)."""
        x = self.features(vectors)
        rewards = np.asarray(quality, float) - self.lam * np.asarray(cost, float)
        for m in {int(i) for i in members}:
            mine = np.asarray(members) == m
            self.a_[m] += x[mine].T @ x[mine]
            self.b_[m] += rewards[mine] @ x[mine]

    def state(self) -> dict[str, Any]:
        """The learned arrays and exploration counts, for another process."""
        return {
            "a": self.a_.tolist(),
            "b": self.b_.tolist(),
            "budgets": {u: [b.decisions, b.explored] for u, b in self.budgets.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.a_ = np.asarray(state["a"], dtype=np.float64)
        self.b_ = np.asarray(state["b"], dtype=np.float64)
        self.budgets = {u: UnitBudget(d, e) for u, (d, e) in state["budgets"].items()}
