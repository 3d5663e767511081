"""JSON access log: one line per request, answered or failed, on the ``pinfactory.access`` logger.

Each line is a JSON object::

    {"ts": 1767000000.123, "request_id": "req_...", "unit": "research", "user": "",
     "model": "auto", "member": "gemma", "status": 200, "latency_ms": 12.4,
     "stream": false, "error": null}

``pinfactory serve`` sends the logger to standard error (``observe: {access_log: false}``
turns it off). Elsewhere it is on when the team file says ``access_log: true``, or when the
application has enabled the logger for INFO before the gateway starts; otherwise nothing
is built, so a request costs nothing for it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

import orjson

from pinfactory.observe.base import Failure
from pinfactory.observe.timeline import Timeline

if TYPE_CHECKING:
    from pinfactory.pipeline import Answer

LOGGER = "pinfactory.access"


def wanted(setting: bool | None) -> bool:
    """Whether to log: the team file's ``observe.access_log``, else whether the logger
    is enabled for INFO right now."""
    if setting is not None:
        return setting
    return logging.getLogger(LOGGER).isEnabledFor(logging.INFO)


class AccessLog:
    """An observer that logs one JSON line per request at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger(LOGGER)

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def answered(self, answer: Answer, timeline: Timeline) -> None:  # noqa: ARG002
        if self.log.isEnabledFor(logging.INFO):
            request = answer.request
            self._line(
                request.request_id, request.unit, request.user, request.model,
                answer.decision.member, 200, answer.latency_ms, request.stream, None,
            )  # fmt: skip

    def failed(self, failure: Failure, timeline: Timeline) -> None:
        if self.log.isEnabledFor(logging.INFO):
            request = failure.request
            latency_ms = (time.perf_counter_ns() - timeline.started_ns) / 1e6
            self._line(
                failure.request_id, failure.unit, request.user if request else "",
                failure.model, failure.member, failure.error.status, latency_ms,
                request.stream if request else False,
                f"{failure.error.code}: {failure.error.message}",
            )  # fmt: skip

    def _line(
        self,
        request_id: str,
        unit: str,
        user: str,
        model: str,
        member: str | None,
        status: int,
        latency_ms: float,
        stream: bool,
        error: str | None,
    ) -> None:
        line = {
            "ts": round(time.time(), 3),
            "request_id": request_id,
            "unit": unit,
            "user": user,
            "model": model,
            "member": member,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "stream": stream,
            "error": error,
        }
        self.log.info(orjson.dumps(line).decode())


def log_to_stderr() -> None:
    """Send access lines to standard error, bare (``pinfactory serve`` and its workers)."""
    logger = logging.getLogger(LOGGER)
    if not any(getattr(h, "_pinfactory_access", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._pinfactory_access = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
