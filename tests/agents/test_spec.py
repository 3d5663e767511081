"""Agents files: what loads, and every mistake named by file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinfactory.agents import load_agents
from pinfactory.errors import TeamFileError
from pinfactory.team import Team


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agents.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_loads_with_its_defaults(tmp_path: Path, team: Team) -> None:
    path = write(
        tmp_path,
        "name: pair\n"
        "termination: {max_steps: 4}\n"
        "agents:\n"
        "  - {name: a, member: alice, tools: [calculator]}\n"
        "  - {name: b, member: auto}\n",
    )
    loaded = load_agents(path, team=team)
    assert loaded.spec.names == ["a", "b"]
    assert loaded.spec.protocol.kind == "round_robin"
    assert loaded.spec.switches.personas and not loaded.spec.switches.theory_of_mind


def test_no_agents(tmp_path: Path, team: Team) -> None:
    with pytest.raises(TeamFileError) as caught:
        load_agents(write(tmp_path, "name: empty\nagents: []\n"), team=team)
    assert "agents.yaml:2: agents:" in caught.value.message
    assert "at least 1" in caught.value.message


def test_unknown_member_and_tool(tmp_path: Path, team: Team) -> None:
    text = (
        "termination: {max_steps: 3}\n"
        "agents:\n"
        "  - {name: a, member: gpt-9}\n"
        "  - {name: b, member: alice, tools: [abacus]}\n"
    )
    with pytest.raises(TeamFileError) as caught:
        load_agents(write(tmp_path, text), team=team)
    message = caught.value.message
    assert "agents.yaml:3: agents.0.member: unknown member 'gpt-9'; allowed: auto, alice" in message
    assert "agents.1.tools.0: unknown member 'abacus'" in message


@pytest.mark.parametrize("kind", ["round_robin", "selector", "handoff"])
def test_a_protocol_that_can_never_terminate(tmp_path: Path, team: Team, kind: str) -> None:
    text = f"protocol: {{kind: {kind}}}\nagents:\n  - {{name: a, member: alice}}\n"
    with pytest.raises(TeamFileError) as caught:
        load_agents(write(tmp_path, text), team=team)
    assert f"protocol '{kind}' can run forever" in caught.value.message
    assert "termination.max_steps" in caught.value.message


def test_bounded_protocols_need_no_limit(tmp_path: Path, team: Team) -> None:
    text = (
        "protocol: {kind: debate, rounds: 1, judge: j}\n"
        "agents:\n  - {name: a, member: alice}\n  - {name: j, member: judge}\n"
    )
    assert load_agents(write(tmp_path, text), team=team).spec.termination.max_steps is None


def test_unknown_fields_judges_and_mast_codes(tmp_path: Path, team: Team) -> None:
    text = (
        "protocol: {kind: debate, judge: nobody}\n"
        "detectors: {policy: {FM-9.9: stop}}\n"
        "agents:\n  - {name: a, member: alice, colour: red}\n"
    )
    with pytest.raises(TeamFileError) as caught:
        load_agents(write(tmp_path, text), team=team)
    message = caught.value.message
    assert "unknown MAST code 'FM-9.9'" in message
    assert "agents.0.colour: unknown field" in message


def test_the_team_file_beside_it(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(
        "members:\n  - {name: calc, kind: calculator}\nrouting: {kind: rules, fallback: calc}\n",
        encoding="utf-8",
    )
    text = "team: team.yaml\nprotocol: {kind: sequential}\nagents:\n  - {name: a, member: calc}\n"
    loaded = load_agents(write(tmp_path, text), environ={})
    assert loaded.team.member_names == ["calc"]
    with pytest.raises(TeamFileError, match="cannot read agents file"):
        load_agents(tmp_path / "missing.yaml")
