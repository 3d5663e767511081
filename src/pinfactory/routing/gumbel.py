"""A router trained end-to-end through the discrete choice (Gumbel-softmax).

A small MLP maps a prompt's embedding, plus the cost weight ``lam``, to what each member
is worth for it; a member's logit is ``worth - lam * its mean cost`` (centred over
members: cost enters explicitly, so the cheap member does not win at every ``lam`` for
want of learning what ``lam`` means). Training draws a relaxed choice with the Gumbel-
softmax and maximises the realised quality minus ``lam`` times the realised cost of that
choice; ``lam`` is drawn afresh for every example (zero a third of the time), so one
trained network serves every cost weight and ``predict(prompts, lam=...)`` sweeps it
without retraining.

Against collapse (a few members chosen for everything, or the cheap member at every lam):
the relaxed sample (``hard=False``) passes every member's value back, not only the sampled
one's; the temperature anneals from ``tau`` to ``tau / 10``; an entropy bonus keeps the
early policy spread; and training runs at least ``epochs`` passes over the data. Trained
with PyTorch on the CPU; inference is plain NumPy.
"""

from __future__ import annotations

from typing import Any, ClassVar, Unpack

import numpy as np

from pinfactory.embeddings import Vectors
from pinfactory.routing.learned import CostAwareParams, CostAwareRouter, Floats
from pinfactory.routing.table import RoutingTable

_LOG_LOW, _LOG_HIGH = -3.0, 2.0  # scaled lam range, log10, as in lambda_grid


class GumbelRouter(CostAwareRouter):
    kind: ClassVar[str] = "gumbel"

    def __init__(
        self,
        *,
        hidden: int = 64,
        steps: int = 600,
        epochs: int = 30,
        batch: int = 256,
        tau: float = 1.0,
        lr: float = 1e-2,
        **common: Unpack[CostAwareParams],
    ) -> None:
        super().__init__(**common)
        self.hidden = hidden
        self.steps = steps
        self.epochs = epochs
        self.batch = batch
        self.tau = tau
        self.lr = lr

    def _fit(self, vectors: Vectors, table: RoutingTable) -> None:
        # torch (seconds to import) loads only when this model is trained or run
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
            centred = (self.mean_cost_ - self.mean_cost_.mean()) / self.cost_scale_
            mean_cost = torch.from_numpy(centred.astype(np.float32))  # softmax ignores a shift
            size = min(self.batch, len(x))
            steps = max(self.steps, int(np.ceil(self.epochs * len(x) / size)))
            for step in range(steps):
                progress = step / max(steps - 1, 1)
                tau = self.tau * 10 ** (-progress)  # tau -> tau / 10
                rows = torch.randint(0, len(x), (size,))
                scaled = 10 ** (torch.rand(size) * (_LOG_HIGH - _LOG_LOW) + _LOG_LOW)
                scaled = torch.where(torch.rand(size) < 1 / 3, 0.0, scaled)
                feature = (torch.log10(scaled + 10**_LOG_LOW) - _LOG_LOW) / (_LOG_HIGH - _LOG_LOW)
                worth = net(torch.cat([x[rows], feature[:, None]], dim=1))
                logits = worth - scaled[:, None] * mean_cost
                choice = functional.gumbel_softmax(logits, tau=tau, hard=False)
                value = quality[rows] - scaled[:, None] * cost[rows]
                probs = functional.softmax(logits, dim=1)
                entropy = -(probs * functional.log_softmax(logits, dim=1)).sum(dim=1).mean()
                bonus = 0.05 * max(0.0, 1.0 - 2 * progress)  # spread early, none after half
                loss = -(choice * value).sum(dim=1).mean() - bonus * entropy
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
        worth = hidden @ self.w2_ + self.b2_
        centred = (self.mean_cost_ - self.mean_cost_.mean()) / self.cost_scale_
        logits = worth - scaled * centred
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
