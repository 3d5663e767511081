"""What the pipeline tells its observers, and the set of observers a team has.

Observers see the typed outcome (``pinfactory.outcome``): metrics and traces
are projections of it, as the ledger row is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol, TypeVar, runtime_checkable

from pinfactory.observe.timeline import Timeline
from pinfactory.outcome import Answer, Failure
from pinfactory.request import Request

T = TypeVar("T")


class Observer(Protocol):
    """Sees every request once it is recorded. Must be quick and must not raise."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def answered(self, answer: Answer, timeline: Timeline) -> None: ...

    def failed(self, failure: Failure, timeline: Timeline) -> None: ...


@runtime_checkable
class TraceIssuer(Protocol):
    """An observer that names a request's trace before the request is recorded."""

    def trace_id(self, request: Request | None) -> str:
        """The 32-hex-digit trace id the request's spans will carry."""


class Observers:
    """The team's observers, called in order."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self.all: tuple[Observer, ...] = tuple(observers)
        # once here: a Protocol isinstance check is slow
        self._traces = next((o for o in self.all if isinstance(o, TraceIssuer)), None)

    def trace_id(self, request: Request | None) -> str | None:
        """The trace id the request's spans will carry (None: the team traces nothing).

        The pipeline seals it into the request's chain segment before the spans exist.
        """
        return self._traces.trace_id(request) if self._traces is not None else None

    def __bool__(self) -> bool:
        return bool(self.all)

    def get(self, kind: type[T]) -> T | None:
        return next((o for o in self.all if isinstance(o, kind)), None)

    def open(self) -> None:
        for observer in self.all:
            observer.open()

    def close(self) -> None:
        for observer in reversed(self.all):
            observer.close()

    def answered(self, answer: Answer, timeline: Timeline | None = None) -> None:
        """Tell every observer; ``timeline`` is the request's (default: the current one),
        given when this runs after the request's own context (``pinfactory.deferred``)."""
        if self.all:
            timeline = timeline or Timeline.current() or Timeline.begin()
            for observer in self.all:
                observer.answered(answer, timeline)

    def failed(self, failure: Failure) -> None:
        if self.all:
            timeline = Timeline.current() or Timeline.begin(
                time.perf_counter() - failure.latency_ms / 1000.0
            )
            for observer in self.all:
                observer.failed(failure, timeline)


__all__ = ["Failure", "Observer", "Observers", "TraceIssuer"]
