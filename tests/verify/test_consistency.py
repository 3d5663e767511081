"""Self-consistency with the real Gemma member; cross-member disagreement through the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from pinfactory.errors import TeamFileError
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.members.llamacpp import LlamaCppMember, LlamaCppSettings
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request
from pinfactory.team import parse_team
from pinfactory.testing.upstreams import misbehaving_upstream
from pinfactory.verify.consistency import agreement, self_consistency
from pinfactory.verify.stage import CAVEAT

SAMPLING_TEAM = """
name: sampling
members:
  - {{name: local, kind: llamacpp, tier: small, settings: {{max_tokens: 16}}}}
routing: {{kind: rules, fallback: local}}
ledger: {{path: {ledger}}}
verification:
  min_confidence: 0.6
  on_low_confidence: caveat
  self_consistency: {{members: [local], samples: {samples}, temperature: 1.5}}
"""


def test_agreement_picks_the_comparison() -> None:
    assert agreement("The total is 1,200.", "1200").score == 1.0
    assert agreement("12 * 7 = 84", "echo: 12 times 7").comparison == "numbers"
    assert agreement("12 * 7 = 84", "echo: 12 times 7").score == 0.0
    assert agreement("Paris.", "paris").score == 1.0


def test_samples_of_a_settled_fact_agree() -> None:
    async def go() -> Any:
        member = LlamaCppMember("local", LlamaCppSettings(max_tokens=8))
        await member.open()
        try:
            request = Request.from_text("What is the capital of France?")
            return await self_consistency(member, request, k=3, temperature=0.2)
        finally:
            await member.close()

    consistency = asyncio.run(go())
    assert len(consistency.answers) == 3 and all("Paris" in a for a in consistency.answers)
    assert consistency.agreement == 1.0 and consistency.consistent
    assert consistency.verdict.label == "supported"


def test_a_team_samples_gemma_and_flags_an_unsettled_answer(tmp_path: Path) -> None:
    team = parse_team(SAMPLING_TEAM.format(ledger=tmp_path / "l.db", samples=3), "t.yaml", {})
    request = Request.from_text("Pick a random number between 1 and 1000.")

    async def go() -> Any:
        async with open_pipeline(team) as pipeline:
            return await pipeline.complete(request)

    answer = asyncio.run(go())
    sampled = answer.metadata()["self_consistency"]
    assert sampled["samples"] == 3 and sampled["temperature"] == 1.5
    assert sampled["agreement"] < 0.6
    event = answer.metadata()["events"][0]
    assert event["event"] == "inconsistent" and event["member"] == "local"
    assert len(event["answers"]) == 3 and len(set(event["answers"])) > 1
    assert answer.metadata()["verdict"]["findings"][0]["kind"] == "inconsistent"
    assert answer.metadata()["escalation"]["kind"] == "caveat"
    assert answer.completion.text.endswith(CAVEAT)


def test_one_sample_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(TeamFileError, match="samples"):
        parse_team(SAMPLING_TEAM.format(ledger=tmp_path / "l.db", samples=1), "t.yaml", {})


@pytest.fixture(scope="module")
def disagreeing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    """A calculator cross-checked by a remote member whose `echo` model answers otherwise."""
    ledger = tmp_path_factory.mktemp("cross") / "ledger.db"
    with serve_in_thread(misbehaving_upstream()) as upstream:
        text = f"""
name: cross
members:
  - {{name: calc, kind: calculator, tier: tool}}
  - name: echo
    kind: openai_http
    tier: remote
    settings: {{base_url: "{upstream}/v1", model: echo, api_key: sk-test}}
routing: {{kind: rules, fallback: calc}}
ledger: {{path: {ledger}}}
verification: {{cross_check: echo, on_low_confidence: caveat}}
"""
        with serve_in_thread(create_app(parse_team(text, "cross.yaml", {}))) as url:
            yield OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_a_disagreement_is_an_event_in_the_response(disagreeing: OpenAI) -> None:
    reply = disagreeing.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "12 times 7"}]
    )
    meta = (reply.model_extra or {})["pinfactory"]
    assert meta["member"] == "calc"
    event = meta["events"][0]
    assert event["event"] == "disagreement" and event["members"] == ["calc", "echo"]
    assert "84" in event["answers"][0] and event["answers"][1] == "echo: 12 times 7"
    assert event["comparison"] == "numbers" and event["agreement"] == 0.0
    assert meta["verdict"]["findings"][0]["kind"] == "disagreement"
    assert meta["escalation"]["kind"] == "caveat"
    assert (reply.choices[0].message.content or "").endswith(CAVEAT)
