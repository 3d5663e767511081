"""A fallback list whose stream breaks after text was sent goes on with the next part only
when that part repeats what was sent; through the gateway and the OpenAI SDK, against an
upstream that breaks on purpose."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import parse_team
from pinfactory.testing.faults import Fault, FaultUpstream, echo_answer, fault_upstream
from tests.conftest import ledger_rows

QUESTION = "tell me five words about rivers"
SCRIPTED = "pinfactory.testing.scripted:ScriptedMember"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with fault_upstream() as server:
        yield server


def team_text(tmp_path: Path, broken_url: str, backup: str) -> tuple[str, Path]:
    ledger = tmp_path / "ledger.db"
    text = (
        "name: resume\n"
        "members:\n"
        f"  - {{name: broken, kind: openai_http, settings: {{base_url: '{broken_url}', "
        "model: m}, price: {per_call: 0.01}}\n"
        f"  - {backup}\n"
        "  - {name: steady, kind: fallback, settings: {members: [broken, backup]}}\n"
        "routing: {kind: rules, fallback: steady}\n"
        "upstream: {retries: 0}\n"
    )
    return text, ledger


def stream_text(url: str) -> tuple[str, dict[str, object]]:
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        chunks = list(
            client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": QUESTION}], stream=True
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, dict((chunks[-1].model_extra or {})["pinfactory"])


def read_stream(client: openai.OpenAI, seen: list[str]) -> None:
    for chunk in client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": QUESTION}], stream=True
    ):
        if chunk.choices:
            assert chunk.choices[0].finish_reason is None  # nothing invented
            seen.append(chunk.choices[0].delta.content or "")


@pytest.mark.parametrize("fault", [Fault.TRUNCATED, Fault.MALFORMED])
def test_a_stream_broken_after_its_first_words_is_finished_by_the_same_model(
    tmp_path: Path, upstream: FaultUpstream, fault: Fault
) -> None:
    backup = (
        f"{{name: backup, kind: openai_http, settings: {{base_url: '{upstream.url}', "
        "model: m}, price: {per_call: 0.02}}"
    )
    text, ledger = team_text(tmp_path, upstream.fault_url(fault), backup)
    team = parse_team(text, "resume.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        said, block = stream_text(url)
    assert said == echo_answer(QUESTION)  # the backup's answer exactly, said once
    calls = block["calls"]
    assert isinstance(calls, list)
    assert [(c["member"], c["purpose"], c["error"] is None) for c in calls] == [
        ("broken", "answer", False),
        ("backup", "fallback", True),
    ]
    (row,) = ledger_rows(ledger)
    assert row["status"] == 200 and row["cost_nusd"] == 30_000_000  # both attempts booked


def test_the_rest_is_cut_from_the_middle_of_a_chunk(
    tmp_path: Path, upstream: FaultUpstream
) -> None:
    answer = echo_answer(QUESTION)
    backup = f"{{name: backup, kind: '{SCRIPTED}', settings: {{replies: [{json.dumps(answer)}]}}}}"
    text, ledger = team_text(tmp_path, upstream.fault_url(Fault.TRUNCATED), backup)
    team = parse_team(text, "resume.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        said, _ = stream_text(url)
    assert said == answer  # the scripted part says it all in one chunk: only the rest relayed
    assert [r["status"] for r in ledger_rows(ledger)] == [200]


def test_a_backup_that_says_something_else_leaves_the_stream_broken(
    tmp_path: Path, upstream: FaultUpstream
) -> None:
    backup = f"{{name: backup, kind: '{SCRIPTED}', settings: {{replies: ['a different answer']}}}}"
    text, ledger = team_text(tmp_path, upstream.fault_url(Fault.TRUNCATED), backup)
    team = parse_team(text, "resume.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    seen: list[str] = []
    with (
        serve_in_thread(create_app(team)) as url,
        openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
        pytest.raises(openai.APIError, match=r"without \[DONE\]"),
    ):
        read_stream(client, seen)
    assert "".join(seen) and echo_answer(QUESTION).startswith("".join(seen))
    (row,) = ledger_rows(ledger)
    assert row["status"] == 502 and "without [DONE]" in row["error"]
