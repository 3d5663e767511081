"""Run grid cells as Ray tasks on an existing cluster (``--ray ADDRESS``).

``ADDRESS`` is what ``ray.init`` takes: ``auto`` (the cluster this machine
belongs to), ``ray://host:10001`` (a remote head) or ``local`` (a fresh
single-machine instance, for trying it out). The cluster's workers need
pinfactory installed; for a local instance this checkout's source is put
on their ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pinfactory.errors import PinfactoryError

Cell = TypeVar("Cell")


class ClusterError(PinfactoryError):
    code = "cluster_unavailable"


def run_on_ray(
    todo: list[Cell],
    address: str,
    run_cell: Callable[[Cell], dict[str, Any]],
    *,
    num_cpus: int | None = None,
) -> Iterator[tuple[Cell, dict[str, Any]]]:
    """Submit ``run_cell(cell)`` for every cell as a Ray task; yield (cell, result) as each
    finishes. The grid passes its own ``run_cell``, so this module needs nothing of it."""
    try:
        import ray  # optional dependency, and slow to import: only for --ray
    except ImportError:
        raise ClusterError("--ray needs the 'ray' package: pip install 'ray==2.60.0'") from None

    started_here = not ray.is_initialized()
    if started_here:
        source = str(Path(__file__).resolve().parents[2])
        paths = [source, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {"PYTHONPATH": os.pathsep.join(paths)}
        if os.environ.get("PINFACTORY_DATA"):
            env["PINFACTORY_DATA"] = os.environ["PINFACTORY_DATA"]
        try:
            ray.init(
                address=address,
                num_cpus=num_cpus if address == "local" else None,
                runtime_env={"env_vars": env},
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Ray cluster at '{address}': {exc}") from None
    try:
        task = ray.remote(run_cell)
        pending = {task.remote(cell): cell for cell in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                yield cell, ray.get(ref)
    finally:
        if started_here:
            ray.shutdown()
