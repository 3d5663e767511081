"""Spans for every request: gen_ai attributes, stages, events, content capture."""

from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.members.base import Completion, Usage
from pinfactory.observe import Observers, Timeline, stage
from pinfactory.observe import attributes as a
from pinfactory.observe.build import build_observers
from pinfactory.observe.config import TracingSpec
from pinfactory.observe.tracing import Tracing
from pinfactory.outcome import Answer, Disagreement, Escalation
from pinfactory.request import Request
from pinfactory.routing import Decision
from pinfactory.verify.base import Verdict
from tests.observe.conftest import observed_team

KINDS = {"upstream": "openai_http", "calculator": "calculator"}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def serve_traced(
    tmp_path: Path, upstream: str, exporter: InMemorySpanExporter, capture: bool = False
) -> AbstractContextManager[str]:
    team = observed_team(tmp_path, upstream)
    tracing = Tracing(TracingSpec(capture_content=capture), exporter=exporter, member_kinds=KINDS)
    return serve_in_thread(create_app(team, observers=Observers([tracing])))


def by_trace(spans: tuple[ReadableSpan, ...], trace_id: str) -> dict[str, ReadableSpan]:
    return {
        s.name: s
        for s in spans
        if s.context is not None and f"{s.context.trace_id:032x}" == trace_id
    }


def test_a_request_is_a_trace_with_gen_ai_attributes_and_stage_spans(
    tmp_path: Path, upstream_url: str, exporter: InMemorySpanExporter
) -> None:
    with (
        serve_traced(tmp_path, upstream_url, exporter) as url,
        OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
    ):
        reply = client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "tell me a secret"}],
            temperature=0.2,
            max_tokens=7,
        )
    meta = (reply.model_extra or {})["pinfactory"]
    spans = by_trace(exporter.get_finished_spans(), meta["trace_id"])
    assert set(spans) == {"chat auto", "pinfactory.route", "chat instant", "pinfactory.record"}
    root = spans["chat auto"]
    assert root.kind is SpanKind.SERVER and root.parent is None
    attrs = dict(root.attributes or {})
    assert attrs[a.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[a.GEN_AI_REQUEST_MODEL] == "auto"
    assert attrs[a.GEN_AI_RESPONSE_MODEL] == "instant"
    assert attrs[a.GEN_AI_RESPONSE_ID] == reply.id
    assert attrs[a.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attrs[a.GEN_AI_REQUEST_MAX_TOKENS] == 7
    assert attrs[a.GEN_AI_USAGE_INPUT_TOKENS] == 5
    assert attrs[a.GEN_AI_USAGE_OUTPUT_TOKENS] == 1
    assert attrs[a.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[a.COST_USD] == pytest.approx(20e-6)
    assert attrs[a.UNIT] == "default"
    assert attrs[a.REQUEST_ID] == meta["request_id"]
    assert attrs[a.ROUTE_MEMBER] == "upstream"
    assert attrs[a.ROUTE_FALLBACK] is True
    assert attrs[a.ROUTE_ROUTER] == "rules"
    call = spans["chat instant"]
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None and call.parent.span_id == root.context.span_id
    call_attrs = dict(call.attributes or {})
    assert call_attrs[a.GEN_AI_PROVIDER_NAME] == "openai"
    assert call_attrs[a.MEMBER] == "upstream" and call_attrs[a.TIER] == "small"
    route_attrs = dict(spans["pinfactory.route"].attributes or {})
    assert "no rule matched" in str(route_attrs[a.ROUTE_REASON])
    # the stages nest inside the request and run in order
    assert root.start_time <= spans["pinfactory.route"].start_time
    assert spans["pinfactory.route"].end_time <= call.start_time
    assert call.end_time <= spans["pinfactory.record"].start_time
    assert spans["pinfactory.record"].end_time <= root.end_time
    # content capture is off by default: no prompt and no answer anywhere
    for span in spans.values():
        assert a.GEN_AI_INPUT_MESSAGES not in (span.attributes or {})
        assert a.GEN_AI_OUTPUT_MESSAGES not in (span.attributes or {})
        assert "tell me a secret" not in str(dict(span.attributes or {}))


def test_content_capture_puts_prompt_and_answer_on_the_member_call(
    tmp_path: Path, upstream_url: str, exporter: InMemorySpanExporter
) -> None:
    with (
        serve_traced(tmp_path, upstream_url, exporter, capture=True) as url,
        OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
    ):
        client.chat.completions.create(
            model="upstream", messages=[{"role": "user", "content": "tell me a secret"}]
        )
    call = next(s for s in exporter.get_finished_spans() if s.name == "chat instant")
    attrs = dict(call.attributes or {})
    assert '"content": "tell me a secret"' in str(attrs[a.GEN_AI_INPUT_MESSAGES])
    assert '"content": "ok"' in str(attrs[a.GEN_AI_OUTPUT_MESSAGES])


def test_failures_are_error_spans_and_traceparent_is_honoured(
    tmp_path: Path, upstream_url: str, exporter: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with (
        serve_traced(tmp_path, upstream_url, exporter) as url,
        OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
    ):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="nope",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
            )
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="auto", messages=[])
    spans = exporter.get_finished_spans()
    failed = by_trace(spans, trace_id)["chat nope"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.parent is not None and failed.parent.span_id == 0x00F067AA0BA902B7
    attrs = dict(failed.attributes or {})
    assert attrs[a.ERROR_TYPE] == "model_not_found"
    assert attrs[a.HTTP_RESPONSE_STATUS_CODE] == 404
    unparsed = [s for s in spans if (s.attributes or {}).get(a.ERROR_TYPE) == "invalid_request"]
    assert len(unparsed) == 1 and unparsed[0].name == "chat -"


def answer_with(**typed: Any) -> Answer:
    request = Request.from_text("Is the sky green?", unit="sales", model="auto")
    decision = Decision(
        member="upstream", reason="rule 'x' matched", router="rules", rule="x",
        scores={"upstream": 0.9, "calculator": 0.1}, confidence=0.9,
    )  # fmt: skip
    completion = Completion("No.", Usage(4, 1), Decimal("0.00001"), model="instant")
    return Answer(request, decision, completion, latency_ms=3.0, **typed)


def record(tracing: Tracing, answer: Answer, stages: tuple[str, ...]) -> None:
    Timeline.begin()
    for name in stages:
        with stage(name):
            pass
    Observers([tracing]).answered(answer)


def test_verdict_escalation_and_disagreement_become_events(exporter: InMemorySpanExporter) -> None:
    tracing = Tracing(TracingSpec(), exporter=exporter, member_kinds=KINDS)
    tracing.open()
    verdict = Verdict(confidence=0.31, label="unsupported", verifier="grounding")
    answer = answer_with(
        verdict=verdict,
        escalation=Escalation("tier", "low confidence", "frontier", 0.31),
        events=(Disagreement(("upstream", "calculator"), ("No.", "Yes."), 0.0, "short"),),
    )
    record(tracing, answer, ("route", "call", "verify", "record"))
    tracing.close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["chat auto"]
    assert root.attributes is not None
    assert root.attributes[a.VERDICT_CONFIDENCE] == pytest.approx(0.31)
    assert root.attributes[a.VERDICT_LABEL] == "unsupported"
    assert root.attributes[a.ROUTE_SCORES] == '{"upstream": 0.9, "calculator": 0.1}'
    assert root.attributes[a.ROUTE_RULE] == "x"
    events = {e.name: dict(e.attributes or {}) for e in root.events}
    assert events[a.GEN_AI_EVALUATION_RESULT_EVENT] == {
        a.GEN_AI_EVALUATION_NAME: "grounding",
        a.GEN_AI_EVALUATION_SCORE_VALUE: pytest.approx(0.31),
        a.GEN_AI_EVALUATION_SCORE_LABEL: "unsupported",
    }
    assert events[a.ESCALATION_EVENT]["pinfactory.escalation.target"] == "frontier"
    assert events[a.ESCALATION_EVENT]["pinfactory.escalation.reason"] == "low confidence"
    assert events[a.DISAGREEMENT_EVENT]["pinfactory.disagreement.members"] == (
        "upstream",
        "calculator",
    )
    verify = dict(spans["pinfactory.verify"].attributes or {})
    assert verify[a.VERDICT_LABEL] == "unsupported"
    assert answer.trace_id == f"{root.context.trace_id:032x}"


def test_absent_verdict_and_escalation_add_no_events(exporter: InMemorySpanExporter) -> None:
    tracing = Tracing(TracingSpec(), exporter=exporter, member_kinds=KINDS)
    tracing.open()
    record(tracing, answer_with(escalation=None), ("route", "call"))
    tracing.close()
    root = next(s for s in exporter.get_finished_spans() if s.name == "chat auto")
    assert list(root.events) == []
    assert a.VERDICT_LABEL not in (root.attributes or {})


def test_tracing_off_builds_no_tracer(tmp_path: Path, upstream_url: str) -> None:
    team = observed_team(tmp_path, upstream_url)
    assert team.spec.observe.tracing.exporter == "none"
    assert build_observers(team).get(Tracing) is None
    quiet = observed_team(tmp_path, upstream_url, extra="observe:\n  metrics: {enabled: false}\n")
    assert not build_observers(quiet)
