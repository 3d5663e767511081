"""Turn protocols: who speaks next.

A protocol is a pure function of the run so far (the agents still active, the
speakers of past turns, the blackboard) and a random generator seeded by the
run's seed and step: a run replays identically, and a resumed run continues
where it stopped. ``None`` means the protocol has nothing more to say (the run
ends); round-robin, selector and handoff may go on forever, so their agents
file must bound them (see :mod:`pinfactory.agents.spec`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pinfactory.agents.blackboard import Blackboard
from pinfactory.agents.spec import (
    AgentSpec,
    DebateSpec,
    HandoffSpec,
    ProtocolSpec,
    RoundRobinSpec,
    SelectorSpec,
    SequentialSpec,
)

_HANDOFF = re.compile(r"HANDOFF\s*(?:to)?\s*[:>-]\s*([a-z0-9][a-z0-9_.-]*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RunView:
    """What a protocol may look at. ``route`` maps a text to the member the team's router picks."""

    agents: Sequence[AgentSpec]
    active: frozenset[str]
    turns: Sequence[str]
    board: Blackboard
    route: Callable[[str], str] | None = None

    @property
    def speaking(self) -> list[AgentSpec]:
        return [a for a in self.agents if a.name in self.active]


class TurnProtocol(Protocol):
    def next(self, view: RunView, rng: random.Random) -> str | None:
        """The next speaker's name, or None when the protocol is done."""

    def round(self, view: RunView) -> int:
        """The round the next turn belongs to (0-based)."""


class Sequential:
    """Each agent once, in file order; each sees what the previous ones wrote."""

    def next(self, view: RunView, rng: random.Random) -> str | None:  # noqa: ARG002
        spoken = set(view.turns)
        return next((a.name for a in view.speaking if a.name not in spoken), None)

    def round(self, view: RunView) -> int:  # noqa: ARG002 (one round)
        return 0


class RoundRobin:
    """Every active agent in file order, again and again."""

    def next(self, view: RunView, rng: random.Random) -> str | None:  # noqa: ARG002
        order = [a.name for a in view.agents]
        start = order.index(view.turns[-1]) + 1 if view.turns else 0
        for offset in range(len(order)):
            name = order[(start + offset) % len(order)]
            if name in view.active:
                return name
        return None

    def round(self, view: RunView) -> int:
        return len(view.turns) // max(1, len(view.active))


class Selector:
    """A rule on the last post picks the speaker; else the router's member, or a seeded draw."""

    def __init__(self, spec: SelectorSpec) -> None:
        self.spec = spec

    def next(self, view: RunView, rng: random.Random) -> str | None:
        speaking = view.speaking
        if not speaking:
            return None
        last = view.board.posts[-1].text if view.board.posts else ""
        for rule in self.spec.rules:
            if rule.contains.lower() in last.lower() and rule.agent in view.active:
                return rule.agent
        previous = view.turns[-1] if view.turns else None
        others = [a for a in speaking if a.name != previous] or speaking
        if self.spec.otherwise == "router" and view.route is not None:
            member = view.route(last or view.board.task)
            chosen = next((a.name for a in others if a.member == member), None)
            if chosen is not None:
                return chosen
        return rng.choice(others).name

    def round(self, view: RunView) -> int:
        return len(view.turns) // max(1, len(view.active))


class Debate:
    """``rounds`` rounds of every debater in turn, then the judge once."""

    def __init__(self, spec: DebateSpec) -> None:
        self.spec = spec

    def _debaters(self, view: RunView) -> list[str]:
        return [a.name for a in view.speaking if a.name != self.spec.judge]

    def next(self, view: RunView, rng: random.Random) -> str | None:  # noqa: ARG002
        debaters = self._debaters(view)
        spoken = sum(1 for t in view.turns if t != self.spec.judge)
        if debaters and spoken < self.spec.rounds * len(debaters):
            return debaters[spoken % len(debaters)]
        if self.spec.judge in view.turns or self.spec.judge not in view.active:
            return None
        return self.spec.judge

    def round(self, view: RunView) -> int:
        spoken = sum(1 for t in view.turns if t != self.spec.judge)
        return min(self.spec.rounds, spoken // max(1, len(self._debaters(view))))


class Handoff:
    """The start agent speaks; ``HANDOFF: name`` (to one of its ``handoffs``) passes the turn."""

    def __init__(self, spec: HandoffSpec) -> None:
        self.spec = spec

    def next(self, view: RunView, rng: random.Random) -> str | None:  # noqa: ARG002
        if not view.turns:
            start = self.spec.start or view.agents[0].name
            return start if start in view.active else None
        current = next(a for a in view.agents if a.name == view.turns[-1])
        said = next((p.text for p in reversed(view.board.posts) if p.agent == current.name), "")
        match = _HANDOFF.search(said)
        if match is None:
            return None
        target = match.group(1).lower()
        return target if target in current.handoffs and target in view.active else None

    def round(self, view: RunView) -> int:
        return len(view.turns)


def build_protocol(spec: ProtocolSpec) -> TurnProtocol:
    """The protocol object for its spec."""
    if isinstance(spec, SequentialSpec):
        return Sequential()
    if isinstance(spec, RoundRobinSpec):
        return RoundRobin()
    if isinstance(spec, SelectorSpec):
        return Selector(spec)
    if isinstance(spec, DebateSpec):
        return Debate(spec)
    return Handoff(spec)
