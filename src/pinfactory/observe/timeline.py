"""When each stage of one request started and ended.

The pipeline begins a timeline per request and wraps each stage in
:func:`stage`; stages written by others (verification, escalation) do the
same without any new parameter, because the timeline travels in a context
variable, as OpenTelemetry's own context does. Noting a stage costs two
clock reads; spans are built from the timeline only if tracing is on.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

_current: ContextVar[Timeline | None] = ContextVar("pinfactory_timeline", default=None)


@dataclass(slots=True)
class Span:
    """One stage: its name and its start and end on the ``perf_counter_ns`` clock."""

    name: str
    start_ns: int
    end_ns: int = 0

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


@dataclass(slots=True)
class Timeline:
    started_ns: int
    epoch_offset_ns: int
    stages: list[Span] = field(default_factory=list)

    @classmethod
    def begin(cls, started: float | None = None) -> Timeline:
        """A new timeline for the current request, starting at ``started`` (perf_counter)."""
        now = time.perf_counter_ns()
        start = now if started is None else int(started * 1e9)
        timeline = cls(start, time.time_ns() - now)
        _current.set(timeline)
        return timeline

    @staticmethod
    def current() -> Timeline | None:
        return _current.get()

    def open(self, name: str) -> Span:
        span = Span(name, time.perf_counter_ns())
        self.stages.append(span)
        return span

    @staticmethod
    def close(span: Span) -> None:
        span.end_ns = time.perf_counter_ns()

    def epoch_ns(self, perf_ns: int) -> int:
        """A ``perf_counter_ns`` reading as nanoseconds since the epoch (what spans carry)."""
        return perf_ns + self.epoch_offset_ns


class stage:  # lower case: used like the function it was, ``with stage("call"):``
    """Note the enclosed block as stage ``name`` of the current request, if one is timed.

    A class rather than a ``@contextmanager`` generator: it runs a few times per
    request, and a plain object costs a fraction of a generator's set-up.
    """

    __slots__ = ("_name", "_span")

    def __init__(self, name: str) -> None:
        self._name = name
        self._span: Span | None = None

    def __enter__(self) -> None:
        timeline = _current.get()
        if timeline is not None:
            self._span = timeline.open(self._name)

    def __exit__(self, *_: object) -> None:
        if self._span is not None:
            self._span.end_ns = time.perf_counter_ns()


def stage_start(name: str) -> Span | None:
    """Open stage ``name`` of the current request; pair with :func:`stage_end`."""
    timeline = _current.get()
    return timeline.open(name) if timeline is not None else None


def stage_end(span: Span | None) -> None:
    if span is not None:
        span.end_ns = time.perf_counter_ns()
