"""OpenTelemetry spans for every request, built from its timeline once it is recorded.

One trace per request: a ``chat {model}`` server span for the whole request,
with a child span per stage (``pinfactory.route``, the member call as a
``chat {member model}`` client span, ``pinfactory.verify``,
``pinfactory.record``, and whatever stages others add). Spans are created
after the fact with the timeline's timestamps, so the pipeline carries no
tracing code and a team without tracing builds no SDK objects at all.
Verdicts are ``gen_ai.evaluation.result`` events; escalation and
disagreement are ``pinfactory.*`` events on the request span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from pinfactory.observe import attributes as a
from pinfactory.observe.config import TracingSpec
from pinfactory.observe.timeline import Timeline
from pinfactory.outcome import Answer, Disagreement, Failure
from pinfactory.request import Request
from pinfactory.verify.base import Verdict

Attributes = dict[str, AttributeValue]

PROVIDERS = {"openai_http": "openai", "llamacpp": "llama.cpp"}
"""``gen_ai.provider.name`` per member kind; other kinds report ``pinfactory.<kind>``."""


class IssuedIds(RandomIdGenerator):
    """Random span ids; the trace id the pipeline already sealed for the request, if any."""

    def __init__(self) -> None:
        self.issued: ContextVar[int | None] = ContextVar("pinfactory_trace_id", default=None)

    def generate_trace_id(self) -> int:
        issued = self.issued.get()
        return issued if issued is not None else super().generate_trace_id()


class Tracing:
    """Turns recorded requests into spans and exports them as the team file says.

    :meth:`trace_id` names a request's trace before it is recorded (the chain
    seals it); the request's spans are then created under that id.

    ``exporter`` overrides the team file's choice (tests pass an in-memory one).
    """

    def __init__(
        self,
        spec: TracingSpec,
        *,
        team: str = "team",
        exporter: SpanExporter | None = None,
        member_kinds: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.team = team
        self.member_kinds = dict(member_kinds or {})
        self._exporter = exporter
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        self._propagator = TraceContextTextMapPropagator()
        self._ids = IssuedIds()

    def trace_id(self, request: Request | None) -> str:
        """The request's trace id, 32 hex digits: the caller's (``traceparent``), else new."""
        if request is not None and request.headers:
            parent = self._propagator.extract(request.headers)
            context = trace.get_current_span(parent).get_span_context()
            if context.is_valid:
                return format(context.trace_id, "032x")
        return format(self._ids.generate_trace_id(), "032x")

    def open(self) -> None:
        if self._provider is not None:
            return
        resource = Resource.create({a.SERVICE_NAME: self.spec.service_name, a.TEAM: self.team})
        provider = TracerProvider(resource=resource, id_generator=self._ids)
        if self._exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(self._exporter))
        elif self.spec.exporter == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif self.spec.exporter == "otlp":
            # the OTLP exporter (about 0.2 s to import) loads only when a team exports traces
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(endpoint=self.spec.endpoint)  # None: OTEL_* env or default
            provider.add_span_processor(BatchSpanProcessor(otlp))
        self._provider = provider
        self._tracer = provider.get_tracer("pinfactory")

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # flushes what is still queued
            self._provider = None
            self._tracer = None

    @property
    def tracer(self) -> trace.Tracer:
        if self._tracer is None:
            raise RuntimeError("tracing is not open")
        return self._tracer

    def answered(self, answer: Answer, timeline: Timeline) -> None:
        request, decision, completion = answer.request, answer.decision, answer.completion
        usage = answer.usage  # every call made for the request, as the ledger books it
        attrs = _request_attributes(request)
        attrs.update(_route_attributes(decision))
        attrs.update(
            {
                a.GEN_AI_RESPONSE_ID: request.completion_id,
                a.GEN_AI_RESPONSE_MODEL: completion.model,
                a.GEN_AI_RESPONSE_FINISH_REASONS: (completion.finish_reason,),
                a.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
                a.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
                a.MEMBER: decision.member,
                a.COST_USD: float(answer.cost_usd),
                a.CALLS: len(answer.calls),
                a.HTTP_RESPONSE_STATUS_CODE: 200,
            }
        )
        verdict = _verdict_attributes(answer.verdict)
        attrs.update(verdict)
        root = self._root(request, timeline, attrs, trace_id=answer.trace_id)
        answer.trace_id = format(root.get_span_context().trace_id, "032x")
        self._events(root, answer, verdict)
        self._stages(root, timeline, answer=answer)
        root.end()

    def failed(self, failure: Failure, timeline: Timeline) -> None:
        request, error = failure.request, failure.error
        attrs: Attributes = _request_attributes(request) if request else {}
        attrs.update(
            {
                a.REQUEST_ID: failure.request_id,
                a.UNIT: failure.unit,
                a.GEN_AI_REQUEST_MODEL: failure.model,
                a.ERROR_TYPE: error.code,
                a.ERROR_MESSAGE: error.message,
                a.HTTP_RESPONSE_STATUS_CODE: error.status,
                a.COST_USD: float(failure.cost_usd),
                a.CALLS: len(failure.calls),
                a.GEN_AI_USAGE_INPUT_TOKENS: failure.usage.input_tokens,
                a.GEN_AI_USAGE_OUTPUT_TOKENS: failure.usage.output_tokens,
            }
        )
        if failure.member:
            attrs[a.MEMBER] = failure.member
        name = f"chat {failure.model}"
        root = self._root(request, timeline, attrs, name=name, trace_id=failure.trace_id)
        failure.trace_id = format(root.get_span_context().trace_id, "032x")
        root.set_status(Status(StatusCode.ERROR, error.message))
        self._stages(root, timeline, failure=failure)
        root.end()

    def _root(
        self,
        request: Request | None,
        timeline: Timeline,
        attrs: Attributes,
        name: str | None = None,
        trace_id: str | None = None,
    ) -> trace.Span:
        """The request's server span, under ``trace_id`` when one was issued (and sealed)."""
        parent = self._propagator.extract(request.headers) if request else None
        issued = self._ids.issued.set(int(trace_id, 16) if trace_id else None)
        try:
            return self.tracer.start_span(
                name or f"{a.OPERATION_CHAT} {request.model if request else '-'}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attrs,
                start_time=timeline.epoch_ns(timeline.started_ns),
            )
        finally:
            self._ids.issued.reset(issued)

    def _stages(
        self,
        root: trace.Span,
        timeline: Timeline,
        *,
        answer: Answer | None = None,
        failure: Failure | None = None,
    ) -> None:
        context = trace.set_span_in_context(root)
        for stage in timeline.stages:
            name, kind, attrs = self._describe_stage(stage.name, answer, failure)
            span = self.tracer.start_span(
                name,
                context=context,
                kind=kind,
                attributes=attrs,
                start_time=timeline.epoch_ns(stage.start_ns),
            )
            if failure is not None and stage is timeline.stages[-1] and stage.name == "call":
                span.set_status(Status(StatusCode.ERROR, failure.error.message))
            span.end(end_time=timeline.epoch_ns(stage.end_ns or stage.start_ns))

    def _describe_stage(
        self, stage: str, answer: Answer | None, failure: Failure | None
    ) -> tuple[str, SpanKind, Attributes]:
        name = a.STAGE_SPAN_PREFIX + stage
        if stage == "route" and answer is not None:
            return name, SpanKind.INTERNAL, _route_attributes(answer.decision)
        if stage == "verify" and answer is not None:
            return name, SpanKind.INTERNAL, _verdict_attributes(answer.verdict)
        if stage == "call":
            member = answer.decision.member if answer else (failure.member if failure else None)
            return self._call_span(member or "-", answer)
        return name, SpanKind.INTERNAL, {}

    def _call_span(self, member: str, answer: Answer | None) -> tuple[str, SpanKind, Attributes]:
        kind = self.member_kinds.get(member, "")
        attrs: Attributes = {
            a.GEN_AI_OPERATION_NAME: a.OPERATION_CHAT,
            a.GEN_AI_PROVIDER_NAME: PROVIDERS.get(kind, f"pinfactory.{kind or 'member'}"),
            a.GEN_AI_REQUEST_MODEL: member,
            a.MEMBER: member,
        }
        if kind:
            attrs[a.MEMBER_KIND] = kind
        if answer is None:
            return f"{a.OPERATION_CHAT} {member}", SpanKind.CLIENT, attrs
        completion = answer.completion
        attrs.update(
            {
                a.GEN_AI_RESPONSE_MODEL: completion.model,
                a.GEN_AI_RESPONSE_FINISH_REASONS: (completion.finish_reason,),
                a.GEN_AI_USAGE_INPUT_TOKENS: completion.usage.input_tokens,
                a.GEN_AI_USAGE_OUTPUT_TOKENS: completion.usage.output_tokens,
                a.COST_USD: float(completion.cost_usd),
            }
        )
        if answer.decision.tier:
            attrs[a.TIER] = answer.decision.tier
        if self.spec.capture_content:
            attrs[a.GEN_AI_INPUT_MESSAGES] = _messages_json(answer.request)
            attrs[a.GEN_AI_OUTPUT_MESSAGES] = json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": completion.text}],
                        "finish_reason": completion.finish_reason,
                    }
                ]
            )
        return f"{a.OPERATION_CHAT} {completion.model}", SpanKind.CLIENT, attrs

    def _events(self, root: trace.Span, answer: Answer, verdict: Attributes) -> None:
        if verdict:
            event: Attributes = {a.GEN_AI_EVALUATION_NAME: str(verdict.get(a.VERDICT_VERIFIER, ""))}
            if a.VERDICT_CONFIDENCE in verdict:
                event[a.GEN_AI_EVALUATION_SCORE_VALUE] = verdict[a.VERDICT_CONFIDENCE]
            if a.VERDICT_LABEL in verdict:
                event[a.GEN_AI_EVALUATION_SCORE_LABEL] = verdict[a.VERDICT_LABEL]
            root.add_event(a.GEN_AI_EVALUATION_RESULT_EVENT, event)
        if answer.escalation is not None:
            escalation = answer.escalation.to_json()
            root.add_event(a.ESCALATION_EVENT, _flatten(escalation, prefix=a.ESCALATION_EVENT))
        for noticed in answer.events:
            name = (
                a.DISAGREEMENT_EVENT if isinstance(noticed, Disagreement) else a.INCONSISTENCY_EVENT
            )
            root.add_event(name, _flatten(noticed.to_json(), prefix=name))


def _request_attributes(request: Request) -> Attributes:
    attrs: Attributes = {
        a.GEN_AI_OPERATION_NAME: a.OPERATION_CHAT,
        a.GEN_AI_REQUEST_MODEL: request.model,
        a.GEN_AI_REQUEST_STREAM: request.stream,
        a.REQUEST_ID: request.request_id,
        a.UNIT: request.unit,
    }
    if request.user:
        attrs[a.USER] = request.user
    if request.temperature is not None:
        attrs[a.GEN_AI_REQUEST_TEMPERATURE] = request.temperature
    if request.max_tokens is not None:
        attrs[a.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.stop:
        attrs[a.GEN_AI_REQUEST_STOP_SEQUENCES] = request.stop
    return attrs


def _route_attributes(decision: Any) -> Attributes:
    attrs: Attributes = {
        a.ROUTE_MEMBER: decision.member,
        a.ROUTE_REASON: decision.reason,
        a.ROUTE_ROUTER: decision.router,
        a.ROUTE_CONFIDENCE: float(decision.confidence),
        a.ROUTE_FALLBACK: bool(decision.fallback),
    }
    if decision.rule:
        attrs[a.ROUTE_RULE] = decision.rule
    if decision.scores:
        attrs[a.ROUTE_SCORES] = json.dumps({k: float(v) for k, v in decision.scores.items()})
    return attrs


def _verdict_attributes(verdict: Verdict | None) -> Attributes:
    """A verdict as attributes; {} if there is none."""
    if verdict is None:
        return {}
    return {
        a.VERDICT_CONFIDENCE: float(verdict.confidence),
        a.VERDICT_LABEL: verdict.label,
        a.VERDICT_VERIFIER: verdict.verifier,
    }


def _flatten(value: Any, prefix: str) -> Attributes:
    """Scalars of a mapping (or object) as event attributes; anything else as JSON."""
    if isinstance(value, bool | int | float | str):
        return {prefix: value}
    if not isinstance(value, Mapping):
        fields = getattr(value, "__dataclass_fields__", None)
        value = {k: getattr(value, k) for k in fields} if fields else {"value": str(value)}
    attrs: Attributes = {}
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if isinstance(item, bool | int | float | str):
            attrs[name] = item
        elif isinstance(item, Sequence) and all(isinstance(x, str) for x in item):
            attrs[name] = tuple(item)
        elif item is not None:
            attrs[name] = json.dumps(item, default=str)
    return attrs


def _messages_json(request: Request) -> str:
    return json.dumps(
        [
            {"role": m.role, "parts": [{"type": "text", "content": m.content}]}
            for m in request.messages
        ]
    )
