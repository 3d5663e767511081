from __future__ import annotations

from pathlib import Path

import pytest

from pinfactory.errors import TeamFileError
from pinfactory.team import load_team, parse_team

GOOD = """\
name: mini
members:
  - name: calc
    kind: calculator
  - name: up
    kind: openai_http
    settings:
      base_url: http://127.0.0.1:9/v1
      model: m
routing:
  kind: rules
  fallback: calc
  rules:
    - name: to-up
      when: {keywords: [hello]}
      route: up
"""


def parse(text: str, environ: dict[str, str] | None = None) -> object:
    return parse_team(text, "team.yaml", environ or {})


def test_default_team_loads_without_frontier_keys() -> None:
    team = load_team(None, {})
    assert team.member_names == ["local", "calculator", "orders"]
    assert team.disabled == ["frontier"]
    assert team.ledger_location == "pinfactory-ledger.db"


def test_frontier_member_turns_on_with_its_environment() -> None:
    environ = {
        "PINFACTORY_FRONTIER_BASE_URL": "http://127.0.0.1:1/v1",
        "PINFACTORY_FRONTIER_API_KEY": "sk-test",
    }
    team = load_team(None, environ)
    assert "frontier" in team.member_names
    assert team.member("frontier").settings["model"] == "gpt-4o-mini"
    assert team.member("frontier").settings["base_url"] == "http://127.0.0.1:1/v1"


def test_ledger_location_from_environment(tmp_path: Path) -> None:
    assert load_team(None, {"PINFACTORY_LEDGER": str(tmp_path / "x.db")}).ledger_location == str(
        tmp_path / "x.db"
    )


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            GOOD.replace("kind: calculator", "kind: abacus"),
            ["team.yaml:4", "members.0.kind", "unknown member kind 'abacus'", "calculator"],
        ),
        (
            GOOD.replace("    kind: calculator\n", "    kind: calculator\n    colour: red\n"),
            ["team.yaml:5", "members.0.colour", "unknown field"],
        ),
        (
            GOOD.replace("model: m", "model: m\n      temprature: 1"),
            ["team.yaml:10", "members.1.settings.temprature", "unknown field"],
        ),
        (
            GOOD.replace("base_url: http://127.0.0.1:9/v1", "base_url: ftp://x"),
            ["members.1.settings.base_url", "pattern"],
        ),
        (
            GOOD.replace("fallback: calc", "fallback: nobody"),
            ["team.yaml:12", "routing.fallback", "'nobody' is not an enabled member"],
        ),
        (
            GOOD.replace("kind: rules", "kind: telepathy"),
            ["unknown router kind 'telepathy'", "rules"],
        ),
        (
            GOOD.replace("{keywords: [hello]}", "{regex: '([unclosed'}"),
            ["routing.rules.0.when.regex", "invalid regex"],
        ),
        (GOOD.replace("route: up", "route: ghost"), ["rule 'to-up'", "unknown member 'ghost'"]),
        (GOOD.replace("name: up", "name: calc"), ["members", "'calc' is used twice"]),
        (
            GOOD.replace("name: calc\n    kind", "name: Calc Two\n    kind"),
            ["members.0.name", "pattern"],
        ),
        (GOOD + "  timeout: [", ["not valid YAML"]),
        ("- just\n- a list\n", ["a YAML mapping"]),
        (GOOD.replace("routing:", "routin:"), ["routing", "required field is missing"]),
    ],
)
def test_broken_team_files_name_the_line_field_and_what_is_allowed(
    broken: str, expected: list[str]
) -> None:
    with pytest.raises(TeamFileError) as caught:
        parse(broken)
    for fragment in expected:
        assert fragment in caught.value.message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TeamFileError, match="cannot read team file"):
        load_team(tmp_path / "nope.yaml")


def test_environment_references_fill_settings() -> None:
    text = GOOD.replace("model: m", "model: ${MODEL_NAME:-fallback-model}")
    assert parse_team(text, "t", {}).member("up").settings["model"] == "fallback-model"
    assert parse_team(text, "t", {"MODEL_NAME": "big"}).member("up").settings["model"] == "big"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("{escalate_to: ghost}", "verification.escalate_to: unknown member 'ghost'"),
        ("{escalate_to: 'tier:galaxy'}", "no member is in tier 'galaxy'"),
        ("{cross_check: nobody}", "verification.cross_check: unknown member 'nobody'"),
        (
            "{self_consistency: {members: [calc, ghost]}}",
            "verification.self_consistency.members.1: unknown member 'ghost'",
        ),
        ("{units: {sales: {shout: true}}}", "verification.units.sales: invalid guard override"),
    ],
)
def test_verification_names_are_checked_at_load(block: str, expected: str) -> None:
    with pytest.raises(TeamFileError) as caught:
        parse(GOOD + f"verification: {block}\n")
    assert expected in caught.value.message


def test_a_valid_verification_block_loads() -> None:
    team = parse_team(GOOD + "verification: {escalate_to: up, cross_check: calc}\n", "t", {})
    spec = team.spec.verification
    assert spec is not None and spec.escalate_to == "up" and spec.cross_check == "calc"
