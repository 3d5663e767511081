"""Observability: OpenTelemetry traces and Prometheus metrics for every request.

The pipeline notes when each stage starts and ends on a :class:`Timeline`
and hands the finished answer (or the failure) to its :class:`Observers`;
tracing turns that into spans after the fact, metrics into counters and
histograms. With tracing off and metrics off nothing is built at all.
"""

from pinfactory.observe.base import Failure, Observer, Observers
from pinfactory.observe.timeline import Timeline, stage

__all__ = ["Failure", "Observer", "Observers", "Timeline", "stage"]
