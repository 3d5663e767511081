"""A router trained end-to-end through the discrete choice (Gumbel-softmax).

A small MLP maps a prompt's embedding, plus the cost weight ``lam``, to one
logit per member. Training samples a hard one-hot choice with the
straight-through Gumbel-softmax estimator and maximises the realised
quality minus ``lam`` times the realised cost of that choice; ``lam`` is
drawn afresh for every example, so one trained network serves every cost
weight and ``predict(prompts, lam=...)`` sweeps it without retraining.
Trained with PyTorch on the CPU; inference is plain NumPy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pinfactory.embeddings import Vectors
from pinfactory.routing.learned import CostAwareRouter, Floats
from pinfactory.routing.table import RoutingTable

_LOG_LOW, _LOG_HIGH = -3.0, 2.0  # scaled lam range, log10, as in lambda_grid


class GumbelRouter(CostAwareRouter):
    kind: ClassVar[str] = "gumbel"

    def __init__(
        self,
        *,
        hidden: int = 64,
        steps: int = 600,
        batch: int = 256,
        tau: float = 1.0,
        lr: float = 1e-2,
        lam: float = 0.0,
        budget_usd: float | None = None,
        quality_target: float | None = None,
        holdout: float = 0.25,
        encoder: str = "minilm-static",
        seed: int = 0,
    ) -> None:
        super().__init__(
            lam=lam,
            budget_usd=budget_usd,
            quality_target=quality_target,
            holdout=holdout,
            encoder=encoder,
            seed=seed,
        )
        self.hidden = hidden
        self.steps = steps
        self.batch = batch
        self.tau = tau
        self.lr = lr

    def _fit(self, vectors: Vectors, table: RoutingTable) -> None:
        import torch
        from torch import nn
        from torch.nn import functional

        self.cost_scale_ = float(max(self.mean_cost_.max(), 1e-12))
        threads = torch.get_num_threads()
        with torch.random.fork_rng():
            torch.set_num_threads(1)  # a tiny MLP: threads only add contention
            torch.manual_seed(self.seed)
            net = nn.Sequential(
                nn.Linear(vectors.shape[1] + 1, self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, len(self.members_)),
            )
            optimiser = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=1e-4)
            x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
            quality = torch.from_numpy(table.quality.astype(np.float32))
            cost = torch.from_numpy((table.cost / self.cost_scale_).astype(np.float32))
            for _ in range(self.steps):
                rows = torch.randint(0, len(x), (min(self.batch, len(x)),))
                scaled = 10 ** (torch.rand(len(rows)) * (_LOG_HIGH - _LOG_LOW) + _LOG_LOW)
                scaled = torch.where(torch.rand(len(rows)) < 0.15, 0.0, scaled)
                feature = (torch.log10(scaled + 10**_LOG_LOW) - _LOG_LOW) / (_LOG_HIGH - _LOG_LOW)
                logits = net(torch.cat([x[rows], feature[:, None]], dim=1))
                choice = functional.gumbel_softmax(logits, tau=self.tau, hard=True)
                value = quality[rows] - scaled[:, None] * cost[rows]
                loss = -(choice * value).sum(dim=1).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        torch.set_num_threads(threads)
        first, second = net[0], net[2]
        self.w1_ = first.weight.detach().numpy().T.copy()
        self.b1_ = first.bias.detach().numpy().copy()
        self.w2_ = second.weight.detach().numpy().T.copy()
        self.b2_ = second.bias.detach().numpy().copy()

    def _member_scores(self, vectors: Vectors, **knobs: Any) -> Floats:
        scaled = self.cost_weight(knobs) * self.cost_scale_
        feature = np.full((len(vectors), 1), _lam_feature(scaled), dtype=np.float32)
        hidden = np.maximum(np.hstack([vectors, feature]) @ self.w1_ + self.b1_, 0.0)
        logits = hidden @ self.w2_ + self.b2_
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)

    def _explain(self, scores: Floats, choice: int, **knobs: Any) -> str:
        return (
            f"gumbel router: '{self.members_[choice]}' p={scores[choice]:.2f} "
            f"under lambda={self.cost_weight(knobs):g}/USD"
        )


def _lam_feature(scaled: float) -> float:
    """Map the scaled cost weight (0 or 1e-3..1e2) to about [0, 1], as in training."""
    return float((np.log10(scaled + 10**_LOG_LOW) - _LOG_LOW) / (_LOG_HIGH - _LOG_LOW))
