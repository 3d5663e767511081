"""Verifiers named in the team file: the built-in ones and a plug-in class."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pinfactory.errors import TeamFileError
from pinfactory.members import Completion
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Document, Request
from pinfactory.team import Team, parse_team
from pinfactory.verify.base import Finding, Verdict, Verifier
from pinfactory.verify.citations import CitationVerifier
from pinfactory.verify.grounding import GroundingChecker
from pinfactory.verify.stage import CAVEAT

PLUGIN = "tests.verify.test_plugins:NoPromises"


class NoPromises:
    """A house rule as a verifier: the answer must not promise anything."""

    name = "no-promises"

    def check(
        self,
        request: Request,
        completion: Completion,
        evidence: Sequence[Document],  # noqa: ARG002 (the Verifier protocol)
    ) -> Verdict:
        if "guarantee" in completion.text.lower():
            finding = Finding("promise", f"'{request.text}' was answered with a promise")
            return Verdict(0.1, "contradicted", self.name, (finding,))
        return Verdict(1.0, "supported", self.name)


def test_every_verifier_follows_the_protocol() -> None:
    for verifier in (GroundingChecker(), CitationVerifier(), NoPromises()):
        assert isinstance(verifier, Verifier)


def team(tmp_path: Path, verifiers: str) -> Team:
    return parse_team(
        f"""
members: [{{name: docs, kind: retrieval}}]
routing: {{kind: rules, fallback: docs}}
ledger: {{path: {tmp_path / "ledger.db"}}}
verification: {{verifiers: {verifiers}, on_low_confidence: caveat, min_confidence: 0.6}}
""",
        "plugins.yaml",
        {},
    )


def ask(team: Team, passage: str) -> Any:
    request = Request.from_text("How long is the warranty?", documents=(Document(passage),))

    async def go() -> Any:
        async with open_pipeline(team) as pipeline:
            return await pipeline.complete(request)

    return asyncio.run(go())


def test_a_plugin_verifier_can_overrule_grounding(tmp_path: Path) -> None:
    promise = "The warranty is two years, and we guarantee a free repair."
    answer = ask(team(tmp_path, f"[grounding, '{PLUGIN}']"), promise)
    verdict = answer.metadata()["verdict"]
    assert verdict["verifier"] == "grounding+no-promises"
    assert verdict["label"] == "contradicted"
    assert answer.metadata()["verification_confidence"] <= 0.1
    assert answer.completion.text.endswith(CAVEAT)


def test_a_plugin_verifier_that_is_satisfied_changes_nothing(tmp_path: Path) -> None:
    answer = ask(team(tmp_path, f"[grounding, '{PLUGIN}']"), "The warranty is two years.")
    assert answer.metadata()["verdict"]["label"] == "supported"
    assert not answer.completion.text.endswith(CAVEAT)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("magic", "unknown verifier 'magic'; allowed: grounding, citations or 'module:Class'"),
        ("tests.verify.nowhere:Thing", "cannot be imported"),
        ("pinfactory.request:Document", "cannot be built without arguments"),
        ("pinfactory.members.base:Usage", "has no name and check(request, completion, evidence)"),
    ],
)
def test_bad_verifier_names_fail_at_load(tmp_path: Path, name: str, problem: str) -> None:
    with pytest.raises(TeamFileError) as caught:
        team(tmp_path, f"['{name}']")
    assert "verification.verifiers.0" in caught.value.message
    assert problem in caught.value.message
