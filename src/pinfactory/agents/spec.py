"""The agents file: a team of agents, its protocol and when it stops.

An agents file is YAML that sits next to a team file and names it
(``team: default-team.yaml``, relative to the agents file; the packaged
default team when absent). Every agent runs on a member of that team, or on
``auto`` (the team's router picks per step). Mistakes are reported when the
file loads, with the file, the line, the field and what is allowed: no agents,
an unknown member or tool, a protocol that could run forever (no step limit
and no budget), a handoff to nobody.

::

    name: solvers
    protocol: {kind: round_robin}
    switches: {personas: true, theory_of_mind: false}
    termination: {max_steps: 12, budget_usd: 0.01, until: {agreement: 2}}
    agents:
      - {name: reader, member: local, persona: "a careful accountant", tools: [calculator]}
      - {name: checker, member: auto, goal: "check the reader's arithmetic"}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pinfactory.errors import TeamFileError
from pinfactory.team import NAME_PATTERN, Team, _at, _describe, load_team

MAST_CODES = (
    "FM-1.1",
    "FM-1.2",
    "FM-1.3",
    "FM-1.4",
    "FM-1.5",
    "FM-2.1",
    "FM-2.2",
    "FM-2.3",
    "FM-2.4",
    "FM-2.5",
    "FM-2.6",
    "FM-3.1",
    "FM-3.2",
    "FM-3.3",
)
UNBOUNDED = ("round_robin", "selector", "handoff")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSpec(_Strict):
    """One agent: its role, where it runs, what tools it may call and its budget."""

    name: str = Field(pattern=NAME_PATTERN)
    member: str = Field(default="auto", description="a member of the team, or 'auto'")
    persona: str = Field(default="", max_length=400, description="who the agent is (a switch)")
    goal: str = Field(default="", max_length=400)
    instructions: str = Field(default="", max_length=1000)
    tools: list[str] = Field(default=[], description="tool members it may call")
    tool_rounds: int = Field(
        default=3, ge=1, le=20, description="tool-call rounds in one turn before it must answer"
    )
    handoffs: list[str] = Field(default=[], description="agents it may hand off to")
    max_tokens: int = Field(default=32, ge=1, le=4096)
    temperature: float | None = Field(default=None, ge=0, le=2)
    budget_usd: Decimal | None = Field(default=None, ge=0)


class RuleSpec(_Strict):
    """Selector rule: when the last post contains ``contains``, ``agent`` speaks next."""

    contains: str = Field(min_length=1)
    agent: str


class SequentialSpec(_Strict):
    kind: Literal["sequential"]


class RoundRobinSpec(_Strict):
    kind: Literal["round_robin"]


class SelectorSpec(_Strict):
    """The next speaker by rule, else by the team's router (``router``) or a seeded draw."""

    kind: Literal["selector"]
    rules: list[RuleSpec] = []
    otherwise: Literal["router", "random"] = "random"


class DebateSpec(_Strict):
    """``rounds`` rounds of every debater, then ``judge`` answers once."""

    kind: Literal["debate"]
    rounds: int = Field(default=2, ge=1, le=100)
    judge: str


class HandoffSpec(_Strict):
    """``start`` speaks; a post ``HANDOFF: name`` passes the turn; no handoff ends the run."""

    kind: Literal["handoff"]
    start: str | None = None


ProtocolSpec = Annotated[
    SequentialSpec | RoundRobinSpec | SelectorSpec | DebateSpec | HandoffSpec,
    Field(discriminator="kind"),
]


class UntilSpec(_Strict):
    """Stop when a post contains ``contains``, or the last ``agreement`` answers agree."""

    contains: str | None = None
    agreement: int | None = Field(default=None, ge=2)


class HumanSpec(_Strict):
    """After ``after_steps`` steps the run waits for a person in the review queue."""

    after_steps: int = Field(ge=1)


class TerminationSpec(_Strict):
    max_steps: int | None = Field(default=None, ge=1, le=100_000)
    budget_usd: Decimal | None = Field(default=None, gt=0)
    until: UntilSpec | None = None
    human: HumanSpec | None = None


class SwitchesSpec(_Strict):
    """The two prompting switches, recorded with every run so their effect can be measured."""

    personas: bool = True
    theory_of_mind: bool = False


class BlackboardSpec(_Strict):
    max_message_chars: int = Field(default=4000, ge=16, le=1_000_000)
    max_messages: int = Field(default=10_000, ge=1)
    context_posts: int = Field(default=4, ge=0, le=100, description="posts an agent is shown")


class FailureSpec(_Strict):
    """What a failing member costs an agent: ``retries`` more tries, then ``then``."""

    retries: int = Field(default=1, ge=0, le=10)
    then: Literal["drop", "stop"] = "drop"


Action = Literal["record", "stop", "review"]


class DetectorSpec(_Strict):
    """Drift and failure detectors; each event is named by its MAST code (Cemri et al. 2025)."""

    enabled: bool = True
    repeat_window: int = Field(default=6, ge=2)
    repeat_count: int = Field(default=3, ge=2)
    derail_steps: int = Field(default=4, ge=2)
    derail_overlap: float = Field(default=0.05, ge=0, le=1)
    policy: dict[str, Action] = Field(
        default={}, description="MAST code -> record, stop or review; default record"
    )

    @model_validator(mode="after")
    def _codes(self) -> DetectorSpec:
        for code in self.policy:
            if code not in MAST_CODES:
                raise ValueError(f"unknown MAST code '{code}'; allowed: {', '.join(MAST_CODES)}")
        return self


class AgentsSpec(_Strict):
    name: str = Field(default="agents", pattern=NAME_PATTERN)
    team: str | None = Field(default=None, description="team file, relative to this file")
    agents: list[AgentSpec] = Field(min_length=1)
    protocol: ProtocolSpec = Field(default_factory=lambda: RoundRobinSpec(kind="round_robin"))
    termination: TerminationSpec = TerminationSpec()
    switches: SwitchesSpec = SwitchesSpec()
    blackboard: BlackboardSpec = BlackboardSpec()
    on_failure: FailureSpec = FailureSpec()
    detectors: DetectorSpec = DetectorSpec()
    aggregation: Literal["last", "majority", "confidence", "judge"] = "last"
    seed: int = 0

    def agent(self, name: str) -> AgentSpec:
        for spec in self.agents:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.agents]


def check_agents(spec: AgentsSpec, members: list[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every problem of ``spec`` against a team with ``members``, as (location, message)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    names = spec.names
    allowed = ", ".join(["auto", *members])
    seen: set[str] = set()
    for i, agent in enumerate(spec.agents):
        if agent.name in seen:
            problems.append((("agents", i, "name"), f"agent name '{agent.name}' is used twice"))
        seen.add(agent.name)
        if agent.member != "auto" and agent.member not in members:
            problems.append(
                (("agents", i, "member"), f"unknown member '{agent.member}'; allowed: {allowed}")
            )
        for j, tool in enumerate(agent.tools):
            if tool not in members:
                problems.append(
                    (("agents", i, "tools", j), f"unknown member '{tool}'; allowed: {allowed}")
                )
        for j, other in enumerate(agent.handoffs):
            if other not in names:
                problems.append(
                    (("agents", i, "handoffs", j), f"unknown agent '{other}'; agents: {names}")
                )
    protocol = spec.protocol
    if isinstance(protocol, DebateSpec) and protocol.judge not in names:
        problems.append((("protocol", "judge"), f"unknown agent '{protocol.judge}'"))
    if isinstance(protocol, DebateSpec) and len(names) < 2:
        problems.append((("protocol", "judge"), "a debate needs a judge and a debater"))
    if isinstance(protocol, HandoffSpec) and protocol.start not in (None, *names):
        problems.append((("protocol", "start"), f"unknown agent '{protocol.start}'"))
    if isinstance(protocol, SelectorSpec):
        for j, rule in enumerate(protocol.rules):
            if rule.agent not in names:
                problems.append(
                    (("protocol", "rules", j, "agent"), f"unknown agent '{rule.agent}'")
                )
    stop = spec.termination
    if protocol.kind in UNBOUNDED and stop.max_steps is None and stop.budget_usd is None:
        problems.append(
            (
                ("termination",),
                f"protocol '{protocol.kind}' can run forever: give termination.max_steps "
                "or termination.budget_usd",
            )
        )
    return problems


class AgentsFile:
    """A loaded agents file and the team it runs on."""

    def __init__(self, spec: AgentsSpec, team: Team, source: str) -> None:
        self.spec = spec
        self.team = team
        self.source = source


def load_agents(
    path: str | Path, *, team: Team | None = None, environ: Mapping[str, str] | None = None
) -> AgentsFile:
    """Load and validate an agents file; ``team`` overrides the file's own ``team``.

    Raises :class:`TeamFileError` naming the file, line and field of every mistake.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise TeamFileError(f"{source}: cannot read agents file: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise TeamFileError(f"{source}: not valid YAML: {exc}") from exc
    spec = parse_agents(raw, str(source), node)
    if team is None:
        team_path = source.parent / spec.team if spec.team else None
        team = load_team(team_path, os.environ if environ is None else environ)
    return validated(spec, team, str(source), node)


def parse_agents(raw: object, source: str, node: yaml.Node | None = None) -> AgentsSpec:
    """The spec from parsed YAML or JSON; a :class:`TeamFileError` names what is wrong."""
    if not isinstance(raw, dict):
        raise TeamFileError(f"{source}: an agents file is a mapping with 'agents'")
    try:
        return AgentsSpec.model_validate(raw)
    except ValidationError as exc:
        raise TeamFileError(_describe(exc, source, node)) from exc


def validated(spec: AgentsSpec, team: Team, source: str, node: yaml.Node | None) -> AgentsFile:
    problems = check_agents(spec, team.member_names)
    if problems:
        raise TeamFileError("\n".join(_at(source, node, loc, msg) for loc, msg in problems))
    return AgentsFile(spec, team, source)
