"""Property tests (hypothesis): whatever arrives, the parsers answer with pinfactory's errors.

- the request parser: any JSON (or not-JSON) body is a Request or a 4xx
  :class:`RequestError` naming what is wrong, never another exception (a 500);
- the team-file loader: any YAML mapping is a Team or a :class:`TeamFileError`;
- the rule parser: any ``when`` condition compiles or is refused at load time, and a
  compiled rule decides on any request without raising.

Each shrunk counterexample hypothesis found is kept below as an explicit regression case.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pinfactory.errors import RequestError, TeamFileError
from pinfactory.gateway.schema import parse_request
from pinfactory.request import Request
from pinfactory.routing.rules import RulesRouter
from pinfactory.team import parse_team

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["user", "system", "assistant", "tool", "developer", "bogus"]) | json_values
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": json_values | st.text()}), max_size=4
)
bodies = st.fixed_dictionaries(
    {"messages": messages | json_values},
    optional={
        "model": json_values,
        "stream": json_values,
        "temperature": json_values,
        "max_tokens": json_values,
        "stop": json_values,
        "stream_options": json_values,
        "user": json_values,
        "tools": json_values,
        "metadata": json_values,
    },
)


def _parse(body: bytes) -> Request | None:
    try:
        request, _ = parse_request(body, unit="u", user="", headers={}, request_id="req_fuzz")
    except RequestError as exc:
        refused = exc
    else:
        return request
    assert 400 <= refused.status < 500
    assert refused.message
    return None


@FAST
@given(bodies)
def test_any_request_body_is_a_request_or_a_4xx(body: dict[str, Any]) -> None:
    request = _parse(orjson.dumps(body))
    if request is not None:
        assert request.messages
        assert all(isinstance(m.content, str) for m in request.messages)


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_are_a_request_or_a_4xx(body: bytes) -> None:
    _parse(body)


@pytest.mark.parametrize(
    "body",
    [
        {"role": ["user"], "content": "hi"},  # a list where a string belongs (issue 11)
        {"role": "user", "content": ["hi"]},
        {"role": "user", "content": {"text": "hi"}},
    ],
)
def test_regression_wrong_types_in_a_message_are_4xx(body: dict[str, Any]) -> None:
    assert _parse(orjson.dumps({"messages": [body]})) is None


@pytest.mark.parametrize(
    "extra",
    [{"temperature": "hot"}, {"max_tokens": "many"}, {"stop": 7}, {"stream": "yes"},
     {"model": ["a"]}, {"temperature": [1]}, {"max_tokens": -1}],
)  # fmt: skip
def test_regression_wrong_types_in_options_are_4xx(extra: dict[str, Any]) -> None:
    assert _parse(orjson.dumps({"messages": [{"role": "user", "content": "hi"}], **extra})) is None


member = st.fixed_dictionaries(
    {"name": st.sampled_from(["calculator", "calc", "Bad Name", ""]) | st.text(max_size=6),
     "kind": st.sampled_from(["calculator", "openai_http", "balanced", "nope", "a.b:C"])},
    optional={"tier": json_values, "price": json_values, "timeout_s": json_values,
              "settings": json_values, "tags": json_values},
)  # fmt: skip
teams = st.fixed_dictionaries(
    {"members": st.lists(member, max_size=3) | json_values,
     "routing": st.fixed_dictionaries({"kind": st.sampled_from(["rules", "x"]),
                                       "fallback": st.sampled_from(["calculator", "calc"])})
                | json_values},
    optional={"upstream": json_values, "rate_limits": json_values, "state": json_values,
              "keys": json_values, "budgets": json_values, "gateway": json_values,
              "name": json_values},
)  # fmt: skip


def _load_or_name_the_mistake(text: str, environ: dict[str, str]) -> None:
    try:
        parse_team(text, "fuzz.yaml", environ)
    except TeamFileError as exc:
        message = exc.message
    else:
        return
    assert message.startswith("fuzz.yaml")


@FEWER
@given(teams)
def test_any_team_mapping_loads_or_names_its_mistake(team: dict[str, Any]) -> None:
    text = yaml.safe_dump(team)
    _load_or_name_the_mistake(text, {"PINFACTORY_LEDGER": ":memory:"})


@FAST
@given(st.text(max_size=120))
def test_any_text_as_a_team_file_loads_or_names_its_mistake(text: str) -> None:
    _load_or_name_the_mistake(text, {})


conditions = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={"keywords": json_values, "regex": st.text(max_size=12) | json_values,
                  "min_tokens": json_values, "max_turns": json_values,
                  "headers": json_values, "unit": json_values, "has_tools": json_values},
    ),
    lambda inner: st.fixed_dictionaries({}, optional={"all": st.lists(inner, max_size=2),
                                                     "any": st.lists(inner, max_size=2),
                                                     "not": inner}),
    max_leaves=6,
)  # fmt: skip
TEAM = (
    "members: [{name: calculator, kind: calculator}]\n"
    "routing: {kind: rules, fallback: calculator}\n"
)


@FEWER
@given(conditions, st.text(max_size=40))
def test_any_rule_compiles_or_is_refused_and_then_decides_anything(
    when: dict[str, Any], text: str
) -> None:
    team = parse_team(TEAM, "rules.yaml", {})
    config = {"kind": "rules", "fallback": "calculator",
              "rules": [{"name": "r", "when": when, "route": "calculator"}]}  # fmt: skip
    try:
        router = RulesRouter.from_config(config, team.router_context())
    except (TeamFileError, ValidationError):
        return  # refused at load time, naming the field (what the team loader reports)
    if text.strip():
        decision = router.decide(Request.from_text(text))
        assert decision.member == "calculator"
