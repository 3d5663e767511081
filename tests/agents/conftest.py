"""A team of tool members and scripted members on a real SQLite ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pinfactory.pipeline import Pipeline, open_pipeline
from pinfactory.team import Team, parse_team

TEAM = """
name: agents-test
members:
  - name: alice
    kind: pinfactory.testing.scripted:ScriptedMember
    price: {per_call: 0.001}
  - name: bob
    kind: pinfactory.testing.scripted:ScriptedMember
    price: {per_call: 0.002}
  - name: judge
    kind: pinfactory.testing.scripted:ScriptedMember
    price: {per_call: 0.003}
  - name: flaky
    kind: pinfactory.testing.scripted:ScriptedMember
    settings: {fail_times: 1, replies: ["answer: 7"]}
  - name: broken
    kind: pinfactory.testing.scripted:ScriptedMember
    settings: {fail_always: true}
  - name: calculator
    kind: calculator
    tier: tool
    price: {per_call: 0.0001}
  - name: orders
    kind: orders
    tier: tool
routing:
  kind: rules
  fallback: alice
  rules:
    - {name: sums, when: {keywords: [sum, add]}, route: bob}
"""


def scripted_team(ledger: Path) -> Team:
    return parse_team(TEAM + f"ledger: {{path: '{ledger}'}}\n", "agents-test.yaml", {})


@pytest.fixture
def team(tmp_path: Path) -> Team:
    return scripted_team(tmp_path / "ledger.db")


@pytest.fixture
async def pipeline(team: Team) -> AsyncIterator[Pipeline]:
    async with open_pipeline(team) as opened:
        yield opened
