"""Failure and drift detectors for long runs, named by the MAST taxonomy.

MAST (Cemri et al. 2025, "Why Do Multi-Agent LLM Systems Fail?", arXiv:2503.13657)
sorts 14 failure modes into three groups: specification issues (FM-1.x),
inter-agent misalignment (FM-2.x) and task verification (FM-3.x). Each detector
here watches the run after every step and raises a :class:`RunEvent` with the
mode it stands for; the agents file's ``detectors.policy`` says whether the
run records it, stops, or goes to the human review queue.

=========================  ========  ==============================================
detector                   MAST      fires when
=========================  ========  ==============================================
step repetition            FM-1.3    an agent posts the same text ``repeat_count``
                                     times within ``repeat_window`` of its posts
task derailment            FM-2.3    ``derail_steps`` posts in a row share (almost)
                                     no content words with the task and goals
lost diversity             FM-1.2    every active agent's last post is identical
                                     (the roles have collapsed into one)
ignored input              FM-2.5    an agent repeats its previous post verbatim
                                     though another agent said something else since
unaware of termination     FM-1.5    an agent keeps posting after it declared the
                                     task finished
budget overrun             FM-1.1    the run (or one agent) spent past its budget
=========================  ========  ==============================================

The thresholds are heuristics over text, not judgements of meaning: tests pin
what each fires on and what it leaves alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from pinfactory.agents.blackboard import Post
from pinfactory.agents.spec import DetectorSpec, TerminationSpec
from pinfactory.agents.state import RunEvent, RunState

MAST_NAMES = {
    "FM-1.1": "disobey task specification",
    "FM-1.2": "disobey role specification",
    "FM-1.3": "step repetition",
    "FM-1.4": "loss of conversation history",
    "FM-1.5": "unaware of termination conditions",
    "FM-2.1": "conversation reset",
    "FM-2.2": "fail to ask for clarification",
    "FM-2.3": "task derailment",
    "FM-2.4": "information withholding",
    "FM-2.5": "ignored other agent's input",
    "FM-2.6": "reasoning-action mismatch",
    "FM-3.1": "premature termination",
    "FM-3.2": "no or incomplete verification",
    "FM-3.3": "incorrect verification",
}
_WORD = re.compile(r"[a-z]{3,}|\d+")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "but",
        "not",
        "you",
        "your",
        "with",
        "this",
        "that",
        "have",
        "from",
        "they",
        "will",
        "what",
        "was",
        "were",
        "their",
        "there",
        "then",
        "them",
        "than",
        "can",
        "all",
        "any",
        "our",
        "out",
        "who",
        "how",
        "its",
        "his",
        "her",
        "she",
        "him",
        "had",
        "has",
        "turn",
        "said",
    ]
)
_DONE = re.compile(r"\b(final answer|task (?:is )?(?:complete|done)|terminate)\b", re.IGNORECASE)

Detector = Callable[[RunState, DetectorSpec], RunEvent | None]


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _messages(state: RunState) -> list[Post]:
    return [p for p in state.posts if p.kind in ("message", "judge")]


def _event(state: RunState, code: str, detail: str, agents: list[str]) -> RunEvent:
    return RunEvent(
        step=len(state.steps) - 1, code=code, name=MAST_NAMES[code], detail=detail, agents=agents
    )


def step_repetition(state: RunState, spec: DetectorSpec) -> RunEvent | None:
    posts = _messages(state)
    if not posts:
        return None
    agent = posts[-1].agent
    mine = [p.text.strip().lower() for p in posts if p.agent == agent][-spec.repeat_window :]
    if mine and mine.count(mine[-1]) >= spec.repeat_count and mine[-1]:
        return _event(
            state,
            "FM-1.3",
            f"'{agent}' said the same thing {mine.count(mine[-1])} times "
            f"in its last {len(mine)} posts",
            [agent],
        )
    return None


def task_derailment(state: RunState, spec: DetectorSpec) -> RunEvent | None:
    posts = _messages(state)[-spec.derail_steps :]
    if len(posts) < spec.derail_steps:
        return None
    goal = content_words(state.task + " " + " ".join(a.goal for a in state.spec.agents))
    if not goal:
        return None
    overlaps = [len(content_words(p.text) & goal) / len(goal) for p in posts]
    if max(overlaps) < spec.derail_overlap:
        return _event(
            state,
            "FM-2.3",
            f"the last {len(posts)} posts share at most {max(overlaps):.0%} of the task's words",
            sorted({p.agent for p in posts}),
        )
    return None


def lost_diversity(state: RunState, spec: DetectorSpec) -> RunEvent | None:  # noqa: ARG001
    active = [a for a in state.spec.names if a not in state.dropped]
    if len(active) < 2:
        return None
    last: dict[str, str] = {}
    for post in _messages(state):
        last[post.agent] = post.text.strip().lower()
    texts = [last.get(a) for a in active]
    if all(texts) and len(set(texts)) == 1:
        return _event(state, "FM-1.2", "every agent's last post is the same text", active)
    return None


def ignored_input(state: RunState, spec: DetectorSpec) -> RunEvent | None:  # noqa: ARG001
    posts = _messages(state)
    if len(posts) < 3:
        return None
    agent = posts[-1].agent
    before = next((i for i in range(len(posts) - 2, -1, -1) if posts[i].agent == agent), None)
    if before is None or before == len(posts) - 2:
        return None
    between = [p for p in posts[before + 1 : -1] if p.agent != agent]
    own = posts[before].text.strip().lower()
    if posts[-1].text.strip().lower() == own and any(
        p.text.strip().lower() != own for p in between
    ):
        others = sorted({p.agent for p in between})
        return _event(
            state,
            "FM-2.5",
            f"'{agent}' repeated itself word for word after {', '.join(others)} said otherwise",
            [agent, *others],
        )
    return None


def unaware_of_termination(state: RunState, spec: DetectorSpec) -> RunEvent | None:  # noqa: ARG001
    posts = _messages(state)
    if len(posts) < 2:
        return None
    agent = posts[-1].agent
    earlier = [p for p in posts[:-1] if p.agent == agent]
    if any(_DONE.search(p.text) for p in earlier):
        return _event(
            state, "FM-1.5", f"'{agent}' declared the task finished and went on posting", [agent]
        )
    return None


def budget_overrun(state: RunState, spec: DetectorSpec) -> RunEvent | None:  # noqa: ARG001
    limit = state.spec.termination.budget_usd
    if limit is not None and state.cost_usd > limit:
        return _event(
            state, "FM-1.1", f"the run spent ${state.cost_usd:.6f} of a ${limit} budget", []
        )
    for agent in state.spec.agents:
        spent = sum((s.cost_usd for s in state.steps if s.agent == agent.name), Decimal(0))
        if agent.budget_usd is not None and spent > agent.budget_usd:
            return _event(
                state,
                "FM-1.1",
                f"'{agent.name}' spent ${spent:.6f} of its ${agent.budget_usd} budget",
                [agent.name],
            )
    return None


DETECTORS: tuple[Detector, ...] = (
    step_repetition,
    task_derailment,
    lost_diversity,
    ignored_input,
    unaware_of_termination,
    budget_overrun,
)


def detect(state: RunState) -> list[RunEvent]:
    """New events after the run's last step, each with its policy's action.

    A mode already raised for the same agents is not raised again.
    """
    spec = state.spec.detectors
    if not spec.enabled:
        return []
    seen = {(e.code, tuple(e.agents)) for e in state.events}
    found = []
    for detector in DETECTORS:
        event = detector(state, spec)
        if event is None or (event.code, tuple(event.agents)) in seen:
            continue
        found.append(event.model_copy(update={"action": spec.policy.get(event.code, "record")}))
    return found


def out_of_budget(state: RunState, termination: TerminationSpec) -> bool:
    return termination.budget_usd is not None and state.cost_usd >= termination.budget_usd
