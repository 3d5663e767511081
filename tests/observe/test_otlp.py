"""A real OTLP/HTTP export: the gateway's spans arrive at a receiver as protobuf."""

from __future__ import annotations

import gzip
from pathlib import Path

from openai import OpenAI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from tests.observe.conftest import observed_team


def receiver(batches: list[ExportTraceServiceRequest]) -> Starlette:
    """The trace endpoint of an OTLP collector, keeping what it receives."""

    async def traces(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        batches.append(message)
        return Response(b"", media_type="application/x-protobuf")

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


def plain(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def test_spans_reach_an_otlp_collector(tmp_path: Path, upstream_url: str) -> None:
    batches: list[ExportTraceServiceRequest] = []
    with serve_in_thread(receiver(batches)) as collector:
        extra = (
            "observe:\n"
            "  tracing:\n"
            "    exporter: otlp\n"
            f"    endpoint: {collector}/v1/traces\n"
            "    service_name: pinfactory-test\n"
        )
        team = observed_team(tmp_path, upstream_url, extra=extra)
        with (
            serve_in_thread(create_app(team)) as url,
            OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
        ):
            reply = client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "2+3"}]
            )
        # leaving the gateway shuts the tracer provider down, which flushes the batch
    trace_id = (reply.model_extra or {})["pinfactory"]["trace_id"]
    spans = [
        (resource, span)
        for batch in batches
        for resource in batch.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    ours = [(r, s) for r, s in spans if s.trace_id.hex() == trace_id]
    assert {s.name for _, s in ours} == {
        "chat auto",
        "pinfactory.route",
        "chat calculator",
        "pinfactory.record",
    }
    resource, root = next((r, s) for r, s in ours if s.name == "chat auto")
    service = {kv.key: plain(kv.value) for kv in resource.resource.attributes}
    assert service["service.name"] == "pinfactory-test"
    assert service["pinfactory.team"] == "observed"
    attrs = {kv.key: plain(kv.value) for kv in root.attributes}
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["pinfactory.member"] == "calculator"
    assert attrs["pinfactory.route.reason"] == "rule 'arithmetic' matched"
    assert attrs["pinfactory.cost_usd"] == 1e-6
    call = next(s for _, s in ours if s.name == "chat calculator")
    call_attrs = {kv.key: plain(kv.value) for kv in call.attributes}
    assert call_attrs["gen_ai.provider.name"] == "pinfactory.calculator"
    assert call.parent_span_id == root.span_id
