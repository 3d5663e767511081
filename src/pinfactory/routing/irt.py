"""Per-member ability models: multidimensional item-response theory on prompt embeddings.

Each member ``m`` has an ability vector ``theta_m`` (``dims`` numbers) and a bias
``c_m``; each prompt ``x`` gets a discrimination vector ``A x`` and a difficulty
``w . x + b`` from its embedding. The chance that ``m`` answers ``x`` well is
``sigmoid(theta_m . (A x) + c_m - (w . x + b))``, fitted by binary cross-entropy on
every (prompt, member) quality in the table (qualities in [0, 1] are soft
targets). Because all members share the prompt side, a member with few good
answers borrows strength from the others (as in RouteLLM's matrix factorisation
and IRT-Router). The router picks predicted quality minus ``lam`` times cost.
"""

from __future__ import annotations

from typing import ClassVar, Unpack

import numpy as np

from pinfactory.embeddings import Vectors
from pinfactory.routing.learned import CostAwareParams, CostAwareRouter, Floats
from pinfactory.routing.table import RoutingTable


class IRTRouter(CostAwareRouter):
    kind: ClassVar[str] = "irt"
    explanation: ClassVar[str] = "answers well with p={quality:.2f}"

    def __init__(
        self,
        *,
        dims: int = 16,
        epochs: int = 200,
        lr: float = 5e-3,
        weight_decay: float = 1e-4,
        **common: Unpack[CostAwareParams],
    ) -> None:
        super().__init__(**common)
        self.dims = dims
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay

    def _fit(self, vectors: Vectors, table: RoutingTable) -> None:
        # torch (seconds to import) loads only when this model is trained or run
        import torch
        from torch import nn
        from torch.nn import functional

        threads = torch.get_num_threads()
        with torch.random.fork_rng():
            torch.set_num_threads(1)
            torch.manual_seed(self.seed)
            x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
            target = torch.from_numpy(table.quality.astype(np.float32))
            members = len(self.members_)
            discrimination = nn.Linear(x.shape[1], self.dims, bias=False)
            difficulty = nn.Linear(x.shape[1], 1)
            ability = nn.Parameter(torch.randn(members, self.dims) * 0.1)
            mean = target.mean(dim=0).clamp(1e-3, 1 - 1e-3)
            bias = nn.Parameter(torch.log(mean / (1 - mean)))
            params = [*discrimination.parameters(), *difficulty.parameters(), ability, bias]
            optimiser = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
            for _ in range(self.epochs):  # full batch: the table fits in memory
                logits = discrimination(x) @ ability.T + bias - difficulty(x)
                loss = functional.binary_cross_entropy_with_logits(logits, target)
                optimiser.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
        torch.set_num_threads(threads)
        self.a_ = discrimination.weight.detach().numpy().T.copy()  # (dim, dims)
        self.w_ = difficulty.weight.detach().numpy().T.copy()  # (dim, 1)
        self.b_ = float(difficulty.bias.detach().numpy()[0])
        self.theta_ = ability.detach().numpy().copy()  # (members, dims)
        self.c_ = bias.detach().numpy().copy()  # (members,)

    def predicted_quality(self, vectors: Vectors) -> Floats:
        """(n, members) chance that each member answers well."""
        z = (vectors @ self.a_) @ self.theta_.T + self.c_ - (vectors @ self.w_ + self.b_)
        predicted: Floats = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
        return predicted
