"""``/metrics`` after real requests through the openai SDK, and who may read it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.observe.metrics import MULTIPROC_DIR_ENV, Metrics, shared_directory
from tests.observe.conftest import observed_team

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, key: str | None = None) -> Samples:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(url + "/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, upstream_url: str, broken_url: str
) -> Iterator[str]:
    team = observed_team(tmp_path_factory.mktemp("metrics"), upstream_url, broken_url)
    with (
        serve_in_thread(create_app(team)) as url,
        OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
    ):
        for text in ("hello", "hello again"):
            client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": text}]
            )
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "2+3"}])
        stream = client.chat.completions.create(
            model="upstream", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "ok"
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}]
            )
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="broken", messages=[{"role": "user", "content": "x"}]
            )
        assert caught.value.status_code == 502
        yield url


def test_requests_cost_and_tokens_by_member_and_unit(served: str) -> None:
    samples = scrape(served)
    by = {"member": "upstream", "unit": "default"}
    # three answers from the upstream member (two routed, one streamed), one from the calculator
    assert value(samples, "pinfactory_requests_total", status="200", **by) == 3
    assert value(samples, "pinfactory_requests_total", member="calculator", unit="default",
                 status="200") == 1  # fmt: skip
    # the instant upstream reports 5 prompt tokens and 1 (2 when streamed) completion tokens
    assert value(samples, "pinfactory_tokens_total", type="input", **by) == 15
    assert value(samples, "pinfactory_tokens_total", type="output", **by) == 4
    # 15 input tokens at $2/Mtok + 4 output tokens at $10/Mtok
    assert value(samples, "pinfactory_cost_usd_total", **by) == pytest.approx(70e-6)
    assert value(samples, "pinfactory_cost_usd_total", member="calculator",
                 unit="default") == pytest.approx(1e-6)  # fmt: skip


def test_errors_by_code_and_status(served: str) -> None:
    samples = scrape(served)
    assert value(samples, "pinfactory_errors_total", member="-", unit="default",
                 code="model_not_found") == 1  # fmt: skip
    assert value(samples, "pinfactory_requests_total", member="-", unit="default",
                 status="404") == 1  # fmt: skip
    assert value(samples, "pinfactory_errors_total", member="broken", unit="default",
                 code="member_failed") == 1  # fmt: skip
    assert value(samples, "pinfactory_quota_refusals_total", unit="default") == 0


def test_latency_histograms_per_stage(served: str) -> None:
    samples = scrape(served)
    # route and call ran for the four answers and the failed member call
    assert value(samples, "pinfactory_stage_duration_seconds_count", stage="route") == 6
    assert value(samples, "pinfactory_stage_duration_seconds_count", stage="call") == 5
    # every request, answered or refused, was recorded
    assert value(samples, "pinfactory_stage_duration_seconds_count", stage="record") == 6
    assert value(samples, "pinfactory_stage_duration_seconds_sum", stage="call") > 0
    assert value(samples, "pinfactory_request_duration_seconds_count", member="upstream") == 3
    assert value(samples, "pinfactory_stage_duration_seconds_bucket", stage="call",
                 le="+Inf") == 5  # fmt: skip


def test_each_app_counts_on_its_own_registry(
    tmp_path: Path, upstream_url: str, served: str
) -> None:
    with serve_in_thread(create_app(observed_team(tmp_path, upstream_url))) as other:
        assert value(scrape(other), "pinfactory_requests_total", member="upstream",
                     unit="default", status="200") == 0  # fmt: skip
    assert value(scrape(served), "pinfactory_requests_total", member="upstream",
                 unit="default", status="200") == 3  # fmt: skip
    assert value(scrape(served), "pinfactory_workers") == 1


def test_a_multiprocess_folder_named_after_import_keeps_the_app_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: str
) -> None:
    """Values are in files only if the variable was set before prometheus-client loaded."""
    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(tmp_path))
    assert shared_directory() is None
    metrics = Metrics()
    metrics.open()
    metrics.requests.labels("m", "u", "200").inc()
    assert b'pinfactory_requests_total{member="m",status="200",unit="u"} 1.0' in (
        metrics.exposition()
    )
    metrics.close()
    assert list(tmp_path.iterdir()) == []


KEYS = (
    "keys:\n"
    "  - {key: sk-unit-sales-01, unit: sales}\n"
    "  - {key: sk-admin-root-01, unit: ops, admin: true}\n"
)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, upstream_url: str) -> Iterator[str]:
    extra = "observe:\n  metrics: {token: metrics-token-0123456789}\n"
    team = observed_team(tmp_path_factory.mktemp("keyed"), upstream_url, keys=KEYS, extra=extra)
    with serve_in_thread(create_app(team)) as url:
        with OpenAI(base_url=url + "/v1", api_key="sk-unit-sales-01", max_retries=0) as client:
            client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hello"}]
            )
        yield url


def test_metrics_need_a_key_when_the_team_has_keys(keyed: str) -> None:
    assert httpx.get(keyed + "/metrics").status_code == 401
    wrong = httpx.get(keyed + "/metrics", headers={"authorization": "Bearer not-a-key-at-all"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"


def test_a_unit_key_cannot_read_metrics(keyed: str) -> None:
    response = httpx.get(keyed + "/metrics", headers={"authorization": "Bearer sk-unit-sales-01"})
    assert response.status_code == 403
    assert "admin key or the metrics token" in response.json()["error"]["message"]


def test_admin_key_and_metrics_token_read_metrics(keyed: str) -> None:
    for key in ("sk-admin-root-01", "metrics-token-0123456789"):
        samples = scrape(keyed, key)
        assert value(samples, "pinfactory_requests_total", member="upstream", unit="sales",
                     status="200") == 1  # fmt: skip


def test_metrics_can_be_switched_off(tmp_path: Path, upstream_url: str) -> None:
    extra = "observe:\n  metrics: {enabled: false}\n"
    with serve_in_thread(create_app(observed_team(tmp_path, upstream_url, extra=extra))) as url:
        assert httpx.get(url + "/metrics").status_code == 404
