"""Turning many posts into one answer.

- ``last``: the last agent post's answer;
- ``majority``: the most frequent answer among each agent's latest post (ties go to
  the answer given first, so the result is deterministic);
- ``confidence``: the same vote weighted by each post's stated confidence;
- ``judge``: the judge's post (a debate's judge, or the last ``judge`` post).

The matched-token ensemble (independent samples of one agent, then a vote) is
:func:`pinfactory.agents.runner.run_ensemble`; it uses :func:`majority` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pinfactory.agents.blackboard import Post

Aggregation = Literal["last", "majority", "confidence", "judge"]


def _votes(posts: Sequence[Post]) -> list[Post]:
    """Each agent's latest post with an answer, in the order agents first spoke."""
    latest: dict[str, Post] = {}
    for post in posts:
        if post.kind in ("message", "judge") and post.answer:
            latest.pop(post.agent, None)
            latest[post.agent] = post
    return list(latest.values())


def weighted_vote(answers: Sequence[str], weights: Sequence[float]) -> str | None:
    """The answer with the most weight; ties to the earliest. None when there is none."""
    totals: dict[str, float] = {}
    for answer, weight in zip(answers, weights, strict=True):
        if answer:
            totals[answer] = totals.get(answer, 0.0) + weight
    if not totals:
        return None
    best = max(totals.values())
    return next(a for a, w in totals.items() if w == best)


def majority(posts: Sequence[Post]) -> str | None:
    votes = _votes(posts)
    return weighted_vote([p.answer for p in votes], [1.0] * len(votes))


def confidence_weighted(posts: Sequence[Post]) -> str | None:
    votes = _votes(posts)
    return weighted_vote([p.answer for p in votes], [p.confidence for p in votes])


def judged(posts: Sequence[Post], judge: str | None) -> str | None:
    said = [p for p in posts if p.kind in ("message", "judge") and p.answer]
    chosen = [p for p in said if p.kind == "judge" or p.agent == judge]
    return chosen[-1].answer if chosen else (said[-1].answer if said else None)


def aggregate(posts: Sequence[Post], how: Aggregation, judge: str | None = None) -> str | None:
    """The run's answer from its posts by ``how``; None when nobody answered."""
    if how == "majority":
        return majority(posts)
    if how == "confidence":
        return confidence_weighted(posts)
    if how == "judge":
        return judged(posts, judge)
    said = [p for p in posts if p.kind in ("message", "judge", "tool") and p.answer]
    return said[-1].answer if said else None
