"""Prometheus metrics for a team, and the ``/metrics`` endpoint that serves them.

In one process each :class:`Metrics` has its own ``CollectorRegistry``, so
several gateways in one process (tests, the lab) never share or clash over
counters. ``serve --workers N`` runs prometheus-client's multiprocess mode:
the parent points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the
workers start, each worker's values live in memory-mapped files there, and a
scrape answered by any worker merges them all (see docs/observe.md).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response

from pinfactory.errors import AuthError, ForbiddenError, QuotaExceeded
from pinfactory.members.calls import MemberCall
from pinfactory.observe import attributes as a
from pinfactory.observe.config import MetricsSpec
from pinfactory.observe.timeline import Timeline
from pinfactory.outcome import Answer, Disagreement, Failure
from pinfactory.team import hash_key

if TYPE_CHECKING:
    from pinfactory.gateway.auth import Keyring

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
NO_MEMBER = "-"
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# requests (200), cost, input tokens, output tokens, request seconds
_AnswerChildren = tuple[Any, Any, Any, Any, Any]


def shared_directory() -> str | None:
    """The multiprocess folder, when prometheus-client writes this process's values there.

    prometheus-client picks memory-mapped values when it is first imported with
    ``PROMETHEUS_MULTIPROC_DIR`` set; a variable set later changes nothing.
    """
    path = os.environ.get(MULTIPROC_DIR_ENV)
    return path if path and values.ValueClass is not values.MutexValue else None


class Metrics:
    """Counters and histograms fed by the pipeline's observers hook."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        by_member = (a.LABEL_MEMBER, a.LABEL_UNIT)
        r = self.registry
        self.requests = Counter(
            a.METRIC_REQUESTS, "Requests by member, unit and HTTP status",
            (*by_member, a.LABEL_STATUS), registry=r,
        )  # fmt: skip
        self.errors = Counter(
            a.METRIC_ERRORS, "Failed requests by member, unit and error code",
            (*by_member, a.LABEL_CODE), registry=r,
        )  # fmt: skip
        self.cost = Counter(a.METRIC_COST_USD, "Spend in USD", by_member, registry=r)
        self.tokens = Counter(
            a.METRIC_TOKENS, "Tokens by member, unit and type (input, output)",
            (*by_member, a.LABEL_TOKEN_TYPE), registry=r,
        )  # fmt: skip
        self.stage_seconds = Histogram(
            a.METRIC_STAGE_SECONDS, "Time spent in each pipeline stage",
            (a.LABEL_STAGE,), buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.request_seconds = Histogram(
            a.METRIC_REQUEST_SECONDS, "Whole-request latency by member",
            (a.LABEL_MEMBER,), buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.escalations = Counter(
            a.METRIC_ESCALATIONS, "Answers escalated to a stronger tier or a person",
            by_member, registry=r,
        )  # fmt: skip
        self.disagreements = Counter(
            a.METRIC_DISAGREEMENTS, "Answers on which members or verifiers disagreed",
            by_member, registry=r,
        )  # fmt: skip
        self.quota_refusals = Counter(
            a.METRIC_QUOTA_REFUSALS, "Requests refused by a budget or quota",
            (a.LABEL_UNIT,), registry=r,
        )  # fmt: skip

        self.workers: Gauge | None = None
        self.shared_dir: str | None = None
        self._collectors: list[Any] = []  # gauges read at scrape time (breaker states)
        # labelled children of the per-answer metrics, looked up once per (member, unit)
        self._answer_children: dict[tuple[str, str], _AnswerChildren] = {}
        self._stage_children: dict[str, Any] = {}

    def open(self) -> None:
        """Find out whether values are shared between workers, and count this worker."""
        self.shared_dir = shared_directory()
        self._answer_children.clear()
        self._stage_children.clear()
        if self.workers is None:  # built here: in multiprocess mode it opens a file
            self.workers = Gauge(
                a.METRIC_WORKERS, "Gateway worker processes serving",
                registry=self.registry, multiprocess_mode="livesum",
            )  # fmt: skip
        self.workers.set(1)

    def close(self) -> None:
        """Stop counting this worker (its counters stay: they are totals)."""
        if self.workers is not None:
            self.workers.set(0)
        if self.shared_dir:
            multiprocess.mark_process_dead(os.getpid(), self.shared_dir)  # type: ignore[no-untyped-call]

    def answered(self, answer: Answer, timeline: Timeline) -> None:
        member, unit = answer.decision.member, answer.request.unit
        children = self._children(member, unit)
        children[0].inc()
        children[4].observe(answer.latency_ms / 1000.0)
        calls = answer.calls
        if len(calls) == 1 and calls[0].member == member:  # most answers: one call
            call = calls[0]
            children[1].inc(float(call.cost_usd))
            children[2].inc(call.usage.input_tokens)
            children[3].inc(call.usage.output_tokens)
        else:
            self._spend(calls, unit)
        self._stages(timeline)
        if answer.escalation is not None:
            self.escalations.labels(member, unit).inc()
        if answer.events and any(isinstance(event, Disagreement) for event in answer.events):
            self.disagreements.labels(member, unit).inc()

    def failed(self, failure: Failure, timeline: Timeline) -> None:
        member, error = failure.member or NO_MEMBER, failure.error
        self.requests.labels(member, failure.unit, str(error.status)).inc()
        self.errors.labels(member, failure.unit, error.code).inc()
        if isinstance(error, QuotaExceeded):
            self.quota_refusals.labels(failure.unit).inc()
        self._spend(failure.calls, failure.unit)
        self._stages(timeline)

    def _spend(self, calls: Sequence[MemberCall], unit: str) -> None:
        """Cost and tokens of every member call, each under the member that was called."""
        for call in calls:
            _, cost, tokens_in, tokens_out, _ = self._children(call.member, unit)
            cost.inc(float(call.cost_usd))
            tokens_in.inc(call.usage.input_tokens)
            tokens_out.inc(call.usage.output_tokens)

    def _children(self, member: str, unit: str) -> _AnswerChildren:
        children = self._answer_children.get((member, unit))
        if children is None:
            children = self._answer_children[(member, unit)] = (
                self.requests.labels(member, unit, "200"),
                self.cost.labels(member, unit),
                self.tokens.labels(member, unit, "input"),
                self.tokens.labels(member, unit, "output"),
                self.request_seconds.labels(member),
            )
        return children

    def _stages(self, timeline: Timeline) -> None:
        found = self._stage_children
        for span in timeline.stages:
            if span.end_ns:
                child = found.get(span.name)
                if child is None:
                    child = found[span.name] = self.stage_seconds.labels(span.name)
                child.observe(span.duration_s)

    def add_collector(self, collector: Any) -> None:
        """A collector read at each scrape (in multiprocess mode too: this worker's view)."""
        self._collectors.append(collector)
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """Prometheus text: this app's registry, or every worker's files in multiprocess mode."""
        if self.shared_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.shared_dir)  # type: ignore[no-untyped-call]
        for collector in self._collectors:
            merged.register(collector)
        return generate_latest(merged)


class MetricsEndpoint:
    """``GET /metrics``: open when the team has no keys and no metrics token.

    Otherwise the caller needs an admin key or the team's metrics token.
    """

    def __init__(self, metrics: Metrics, keyring: Keyring, spec: MetricsSpec) -> None:
        self.metrics = metrics
        self.keyring = keyring
        self.token_digest = spec.token_sha256 or (hash_key(spec.token) if spec.token else None)

    @property
    def open(self) -> bool:
        return self.keyring.open and self.token_digest is None

    def authorize(self, authorization: str | None) -> None:
        if self.open:
            return
        if self.token_digest and authorization:
            scheme, _, key = authorization.partition(" ")
            offered = hash_key(key.strip())
            if scheme.lower() == "bearer" and hmac.compare_digest(offered, self.token_digest):
                return
        if self.keyring.open:
            raise AuthError("metrics need the metrics token: send 'Authorization: Bearer <token>'")
        caller = self.keyring.identify(authorization)
        if not caller.admin:
            raise ForbiddenError("metrics need an admin key or the metrics token")

    async def handle(self, http: HTTPRequest) -> Response:
        self.authorize(http.headers.get("authorization"))
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
