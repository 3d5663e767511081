"""schemathesis against the OpenAPI document the gateway serves, over real HTTP.

Every operation in ``/openapi.json`` gets requests generated from its schema (valid and
invalid ones): none may be answered with a 5xx, and every response must match the
document (status codes, content types, bodies). Examples are bounded and derandomised
(the same inputs on every run), so the test is fast and never flaky. Findings become
the regression tests at the end of this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import parse_team
from pinfactory.testing.faults import FaultUpstream, fault_upstream

pytestmark = pytest.mark.slow
EXAMPLES = 50  # per operation and generation mode
# A schema-valid request may still be refused with a documented 400 (the gateway checks
# rules JSON Schema cannot state, such as "at least one message with content"); the
# refusal must match the document's Error schema all the same.
SEMANTIC = [positive_data_acceptance]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with fault_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def base_url(upstream: FaultUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    team = parse_team(
        "name: fuzz\n"
        "members:\n"
        f"  - {{name: echo, kind: openai_http, settings: {{base_url: '{upstream.url}', "
        "model: m}}\n"
        "routing: {kind: rules, fallback: echo}\n"
        f"ledger: {{path: '{folder / 'ledger.db'}'}}\n"
        "observe: {access_log: false}\n",
        "fuzz.yaml",
        {},
    )
    with serve_in_thread(create_app(team)) as url:
        yield url


def operations(base_url: str) -> list[schemathesis.schemas.APIOperation]:
    """Every operation of the document the gateway serves (fetched over HTTP)."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_the_served_document_lists_the_gateway_operations(base_url: str) -> None:
    found = {(op.method.upper(), op.path) for op in operations(base_url)}
    assert ("POST", "/v1/chat/completions") in found
    assert ("GET", "/v1/models") in found


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_5xx_and_every_response_matches_the_document(
    base_url: str, mode: GenerationMode
) -> None:
    """Positive (schema-valid) and negative (schema-breaking) requests for each operation:
    schemathesis's default checks (no 5xx; status code, content type, headers and body as
    documented; invalid input refused with 4xx, valid input accepted)."""
    for operation in operations(base_url):
        if mode is GenerationMode.NEGATIVE and not len(operation.body):
            continue  # only a body can break its schema (a path parameter is any string)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, excluded_checks=SEMANTIC)

        check()


def test_finding_schema_valid_but_contentless_messages_get_a_400_naming_messages(
    base_url: str,
) -> None:
    """schemathesis's first finding (ST202): this body fits the document's schema, yet the
    gateway refuses it, since no message has content. The refusal is a documented 400 in
    the Error schema naming the field, never a 5xx; the document cannot state the rule."""
    body = {"messages": [{"content": "", "role": "developer"}], "model": "auto"}
    reply = httpx.post(base_url + "/v1/chat/completions", json=body, timeout=10)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "messages"
    assert error["type"] == "invalid_request_error"
