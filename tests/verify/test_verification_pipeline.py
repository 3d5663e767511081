"""The retrieval member and the verify stage, end to end: openai SDK -> gateway -> ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Document, Request
from pinfactory.team import Team, default_team_path, load_team, parse_team
from pinfactory.verify.stage import CAVEAT

DOCS_TEAM = default_team_path().parent / "docs-team.yaml"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenAI]:
    ledger = tmp_path_factory.mktemp("docs") / "ledger.db"
    team = load_team(DOCS_TEAM, {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        yield OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def ask(client: OpenAI, question: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    reply = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": question}], extra_body=extra or None
    )
    return reply.choices[0].message.content or "", (reply.model_extra or {})["pinfactory"]


def test_answers_cite_the_policy_and_pass_verification(client: OpenAI) -> None:
    text, meta = ask(client, "How much does express delivery cost?")
    assert "£8.50 [1]" in text
    assert meta["member"] == "docs"
    assert meta["verdict"]["label"] == "supported"
    assert meta["verification_confidence"] >= 0.6
    assert meta["sources"] == [{"n": 1, "title": "Shipping policy"}]
    assert "escalation" not in meta


def test_what_the_documents_do_not_say_is_not_made_up(client: OpenAI) -> None:
    text, meta = ask(client, "Who won the 1998 football World Cup?")
    assert text == "That is not in the documents."
    assert meta["refused"] is True and "verdict" not in meta


def test_a_request_grounds_on_its_own_documents(client: OpenAI) -> None:
    text, meta = ask(
        client,
        "What colour is the delivery van?",
        documents=[{"title": "fleet", "text": "The delivery van is bright green. It is a Ford."}],
    )
    assert text == "The delivery van is bright green [1]."
    assert meta["sources"] == [{"n": 1, "title": "fleet"}]


def policy_team(ledger: Path, on_low: str) -> Team:
    text = f"""
name: policy
members:
  - {{name: calc, kind: calculator, tier: tool}}
  - {{name: docs, kind: retrieval, tier: frontier}}
routing: {{kind: rules, fallback: calc}}
ledger: {{path: {ledger}}}
verification:
  min_confidence: 0.6
  on_low_confidence: {on_low}
  escalate_to: tier:frontier
"""
    return parse_team(text, "policy.yaml", {})


def run(team: Team, request: Request) -> Any:
    async def go() -> Any:
        async with open_pipeline(team) as pipeline:
            return await pipeline.complete(request)

    return asyncio.run(go())


QUESTION = Request.from_text(
    "12 times 7",
    model="calc",
    documents=(Document("The answer to twelve times seven is 48 in this puzzle.", "puzzle"),),
)


def test_low_confidence_escalates_to_the_next_tier(tmp_path: Path) -> None:
    answer = run(policy_team(tmp_path / "l.db", "escalate"), QUESTION)
    escalation = answer.metadata()["escalation"]
    assert escalation["kind"] == "tier" and escalation["target"] == "docs"
    assert escalation["evidence"][0]["kind"] in ("claim_contradicted", "claim_unsupported")
    assert answer.decision.member == "docs" and "escalated to 'docs'" in answer.decision.reason
    assert "is 48 in this puzzle [1]." in answer.completion.text


def test_low_confidence_goes_to_review_with_the_withheld_answer(tmp_path: Path) -> None:
    answer = run(policy_team(tmp_path / "l.db", "review"), QUESTION)
    assert answer.metadata()["review"]["status"] == "pending"  # the queue holds it for a person
    assert "waiting for human review" in answer.completion.text
    assert answer.metadata()["escalation"]["kind"] == "review"
    assert "84" in answer.escalation.answer  # kept for the reviewer...
    assert "answer" not in answer.metadata()["escalation"]  # ...never sent to the client


def test_low_confidence_answers_with_a_caveat(tmp_path: Path) -> None:
    answer = run(policy_team(tmp_path / "l.db", "caveat"), QUESTION)
    assert "84" in answer.completion.text and answer.completion.text.endswith(CAVEAT)
    assert answer.metadata()["verification_confidence"] < 0.6


def test_no_documents_no_verdict(tmp_path: Path) -> None:
    answer = run(policy_team(tmp_path / "l.db", "caveat"), Request.from_text("12 times 7"))
    assert "verdict" not in answer.metadata() and "84" in answer.completion.text


def test_a_streamed_answer_is_verified_before_it_is_sent(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "How much does express delivery cost?"}],
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    meta = (chunks[-1].model_extra or {})["pinfactory"]
    assert "£8.50 [1]" in text
    assert meta["verdict"]["label"] == "supported"
    assert meta["verification_confidence"] >= 0.6
