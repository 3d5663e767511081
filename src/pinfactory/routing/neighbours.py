"""Exact cosine k-nearest neighbours over a router's training prompts.

A single routing decision multiplies one query row by the whole training
matrix. Left to itself OpenBLAS splits that small product across every core,
and on a busy machine the threads' hand-off costs milliseconds (p50 stays low,
the mean and p99 explode). :class:`NeighbourIndex` keeps the training vectors
as one C-contiguous float32 matrix, runs small queries with BLAS held to one
thread, and selects the ``k`` best of a single row with ``argpartition`` on a
1-D array. Batches (training, sweeps) keep every BLAS thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController

from pinfactory.embeddings import Vectors

Indices = npt.NDArray[np.int64]
SMALL_BATCH = 16  # at most this many query rows run on one BLAS thread

_controller: ThreadpoolController | None = None


def _blas() -> ThreadpoolController:
    """One controller per process, built on first use (it scans loaded libraries)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


class NeighbourIndex:
    """The training vectors of a kNN router; :meth:`nearest` finds the ``k`` most similar."""

    def __init__(self, vectors: Vectors) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def similarities(self, queries: Vectors) -> npt.NDArray[np.float32]:
        """(n, training rows) cosine similarities (rows are L2-normalised)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) > SMALL_BATCH:
            return np.asarray(queries @ self.vectors.T, dtype=np.float32)
        with _blas().limit(limits=1, user_api="blas"):
            return np.asarray(queries @ self.vectors.T, dtype=np.float32)

    def nearest(self, queries: Vectors, k: int) -> Indices:
        """(n, k) row indices of each query's ``k`` nearest training prompts (unordered)."""
        k = min(k, len(self.vectors))
        sims = self.similarities(queries)
        if len(sims) == 1:
            return np.argpartition(-sims[0], k - 1)[:k][None, :].astype(np.int64)
        return np.argpartition(-sims, k - 1, axis=1)[:, :k].astype(np.int64)

    def __getstate__(self) -> dict[str, Any]:
        return {"vectors": self.vectors}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.vectors = np.ascontiguousarray(state["vectors"], dtype=np.float32)
