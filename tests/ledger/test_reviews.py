"""The human review queue: escalations wait, reviewers decide, decisions are audited."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.errors import Conflict, NotFound, RequestError
from pinfactory.ledger import open_ledger
from pinfactory.ledger.chain import verify_ledger
from pinfactory.ledger.reviews import ReviewQueue
from pinfactory.outcome import Answer, Escalation
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request
from pinfactory.team import ReviewSpec, parse_team
from pinfactory.verify.base import Finding, Verdict

runner = CliRunner()

ESCALATION = Escalation(
    "review",
    "verifier found no support for the claim",
    "review",
    0.2,
    (Finding("claim_unsupported", "no passage supports it", claim="6 * 7 = 41"),),
)


def team_text(location: str, mode: str = "poll") -> str:
    where = f"dsn: '{location}'" if location.startswith("postgresql") else f"path: '{location}'"
    return (
        "members: [{name: calculator, kind: calculator, price: {per_call: 0.01}}]\n"
        "routing: {kind: rules, fallback: calculator}\n"
        f"reviews: {{mode: {mode}, timeout_s: 5}}\n"
        f"ledger: {{{where}}}\n"
    )


async def escalated_answer(location: str, mode: str) -> tuple[Answer, str]:
    """Answer a request through the real pipeline, escalate it, hold and record it."""
    team = parse_team(team_text(location, mode), "team.yaml", {})
    async with open_pipeline(team) as pipeline:
        request = Request.from_text("6 * 7", unit="sales", user="alice")
        decision = pipeline.decide(request)
        completion = await pipeline.members[decision.member].complete(request)
        answer = Answer(request, decision, completion, 1.0)
        answer.verdict = Verdict(0.2, "unsupported", "grounding")
        answer.escalation = ESCALATION
        if mode == "wait":

            async def reviewer() -> None:
                while not (pending := await pipeline.ledger.reviews("pending")):
                    await asyncio.sleep(0.05)
                await pipeline.reviews.override(pending[0].id, "carol", "6 * 7 = 42", "fixed")

            held, _ = await asyncio.gather(pipeline.reviews.hold(answer), reviewer())
        else:
            held = await pipeline.reviews.hold(answer)
        await pipeline.record(held)
        return held, request.request_id


def _review_id(answer: Answer) -> str:
    assert answer.review is not None
    return answer.review.id


async def test_poll_mode_withholds_the_answer_until_a_reviewer_approves(location: str) -> None:
    held, request_id = await escalated_answer(location, "poll")
    block = held.review
    assert block is not None and block.status == "pending" and block.poll is not None
    assert held.completion.text.startswith("This answer is waiting for human review")
    assert block.poll in held.completion.text
    assert block.poll == f"/v1/reviews/{block.id}"
    ledger = open_ledger(location)
    await ledger.open()
    try:
        queue = ReviewQueue(ledger)
        review = await queue.get(block.id, unit="sales")
        assert review.reason == ESCALATION.reason
        assert review.evidence[0]["claim"] == "6 * 7 = 41"
        assert review.answer == "6 * 7 = 42" and review.verdict["label"] == "unsupported"
        with pytest.raises(NotFound):
            await queue.get(block.id, unit="support")  # another unit never sees it
        approved = await queue.approve(block.id, "carol")
        assert approved.status == "approved" and approved.released_answer == "6 * 7 = 42"
        with pytest.raises(Conflict, match="already decided"):
            await queue.override(block.id, "dave", "something else")
        with pytest.raises(NotFound):
            await queue.approve("rev_doesnotexist", "carol")
        with pytest.raises(RequestError):
            await queue.approve(block.id, " ")
        kinds = [r.kind for r in await ledger.audit(request_id)]
        assert kinds.count("review.queued") == 1 and kinds.count("review.approved") == 1
        assert (await verify_ledger(ledger)).intact
    finally:
        await ledger.close()


async def test_wait_mode_returns_the_reviewers_answer(location: str) -> None:
    held, _ = await escalated_answer(location, "wait")
    assert held.completion.text == "6 * 7 = 42"
    assert held.review is not None and held.review.status == "overridden"
    assert held.review.reviewer == "carol"


def test_explain_names_the_reviewer_override_and_the_flagging_verifier(tmp_path: Path) -> None:
    location = str(tmp_path / "ledger.db")
    _, request_id = asyncio.run(escalated_answer(location, "wait"))
    team = tmp_path / "team.yaml"
    team.write_text(team_text(location))
    result = runner.invoke(app, ["audit", "explain", request_id, "--team", str(team)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "final: reviewer carol (override)" in output
    assert "verifier grounding flagged the answer (unsupported, confidence 0.2)" in output
    assert "member calculator: answer overridden by reviewer carol" in output
    assert "escalated to review" in output
    missing = runner.invoke(app, ["audit", "explain", "req_nope", "--team", str(team)])
    assert missing.exit_code == 1 and "no audit entries" in missing.output


def test_review_cli_lists_decides_and_exports_labelled_data(tmp_path: Path) -> None:
    location = str(tmp_path / "ledger.db")
    team = tmp_path / "team.yaml"
    team.write_text(team_text(location))
    ids = [_review_id(asyncio.run(escalated_answer(location, "poll"))[0]) for _ in range(2)]
    listed = runner.invoke(app, ["review", "list", "--team", str(team), "--json"])
    assert listed.exit_code == 0 and {r["id"] for r in json.loads(listed.stdout)} == set(ids)
    shown = runner.invoke(app, ["review", "show", ids[0], "--team", str(team), "--json"])
    assert json.loads(shown.stdout)["reason"] == ESCALATION.reason
    ok = runner.invoke(app, ["review", "approve", ids[0], "-r", "carol", "--team", str(team)])
    assert ok.exit_code == 0, ok.output
    new = ["review", "override", ids[1], "-r", "dave", "-a", "42", "--team", str(team)]
    assert runner.invoke(app, new).exit_code == 0
    again = runner.invoke(app, new)
    assert again.exit_code == 1 and "already decided" in again.output
    unknown = runner.invoke(app, ["review", "show", "rev_nope", "--team", str(team)])
    assert unknown.exit_code == 1 and "no review 'rev_nope'" in unknown.output
    out = tmp_path / "labels.jsonl"
    exported = runner.invoke(app, ["review", "export", "--team", str(team), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_decision = {row["decision"]: row for row in rows}
    assert by_decision["approved"]["label"] == "accepted"
    assert by_decision["overridden"]["final_answer"] == "42"
    assert {"prompt", "member", "answer", "verdict"} <= set(rows[0])
    assert rows[0]["prompt"] == "6 * 7" and rows[0]["member"] == "calculator"
    verified = runner.invoke(app, ["audit", "verify", "--team", str(team)])
    assert verified.exit_code == 0, verified.output


def test_review_policy_defaults() -> None:
    assert ReviewSpec().mode == "poll"
