"""Bad input gets an OpenAI-style 4xx naming the field, and is still recorded."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import ledger_rows

HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("body", "status", "fragment", "param"),
    [
        (b"{not json", 400, "not valid JSON", None),
        (b"[1, 2]", 400, "JSON object", None),
        (json.dumps({"model": "auto"}).encode(), 400, "'messages' is required", "messages"),
        (json.dumps({"model": "auto", "messages": []}).encode(), 400, "non-empty list", "messages"),
        (
            json.dumps({"model": "auto", "messages": [{"role": "user", "content": ""}]}).encode(),
            400,
            "at least one message with content",
            "messages",
        ),
        (json.dumps({"messages": HELLO}).encode(), 400, "'model' is required", "model"),
        (
            json.dumps(
                {"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}
            ).encode(),
            400,
            "messages.0.role",
            "messages.0.role",
        ),
        (
            json.dumps({"model": "nobody", "messages": HELLO}).encode(),
            404,
            "unknown model 'nobody'",
            "model",
        ),
        (
            json.dumps({"model": "auto", "messages": HELLO, "temperature": "hot"}).encode(),
            400,
            "'temperature'",
            "temperature",
        ),
        (
            json.dumps({"model": "auto", "messages": HELLO, "temperature": 7}).encode(),
            400,
            "between 0 and 2",
            "temperature",
        ),
        (
            json.dumps({"model": "auto", "messages": HELLO, "max_tokens": "ten"}).encode(),
            400,
            "'max_tokens'",
            "max_tokens",
        ),
        (
            json.dumps({"model": "auto", "messages": HELLO, "max_tokens": -1}).encode(),
            400,
            "at least 1",
            "max_tokens",
        ),
        (
            json.dumps({"model": "auto", "messages": HELLO, "stream": "yes"}).encode(),
            400,
            "'stream'",
            "stream",
        ),
    ],
)
def test_bad_requests_get_clear_errors_and_are_recorded(
    gateway_url: str,
    gateway_ledger: Path,
    body: bytes,
    status: int,
    fragment: str,
    param: str | None,
) -> None:
    request_id = f"req_bad_{abs(hash(body))}"
    response = httpx.post(
        gateway_url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json", "x-request-id": request_id},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    rows = ledger_rows(gateway_ledger, f"correlation_id = '{request_id}'")  # the client's id
    assert [row["status"] for row in rows] == [status]
    assert fragment.split("'")[0] in rows[0]["error"]


def test_body_over_the_limit_is_413_and_recorded(gateway_url: str, gateway_ledger: Path) -> None:
    huge = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "x" * 1_100_000}]})
    response = httpx.post(
        gateway_url + "/v1/chat/completions", content=huge, headers={"x-request-id": "req_huge"}
    )
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]
    huge_rows = ledger_rows(gateway_ledger, "correlation_id = 'req_huge'")
    assert [r["status"] for r in huge_rows] == [413]
