"""The blackboard: typed posts every agent of a run can read and write.

A post is what one step produced (an agent's message, a tool's result, a
person's decision), with the step and request that produced it. The board
refuses a post over its size limit (:class:`BlackboardFull` is a 413, naming
the limit) and keeps at most ``max_messages`` posts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pinfactory.errors import PayloadTooLarge, RequestError

PostKind = Literal["task", "message", "tool", "human", "judge", "environment"]
_ANSWER = re.compile(r"(?:final answer|answer)\s*[:=]\s*([^\n]+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_CONFIDENCE = re.compile(r"confidence\s*[:=]?\s*(0?\.\d+|1(?:\.0+)?|\d{1,3}\s*%)", re.IGNORECASE)


class BlackboardFull(PayloadTooLarge):
    """A post over the board's size limit."""


class Post(BaseModel):
    """One entry of the board. ``step`` is -1 for the task itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: int
    agent: str
    kind: PostKind
    text: str
    request_id: str = ""
    round: int = 0

    @property
    def answer(self) -> str:
        """The post's answer, normalised: ``answer: X`` if stated, else its last number,
        else its first line lower-cased. Empty for an empty post."""
        return extract_answer(self.text)

    @property
    def confidence(self) -> float:
        """A stated ``confidence: 0.8`` (or 80%), else 1.0."""
        match = _CONFIDENCE.search(self.text)
        if not match:
            return 1.0
        value = match.group(1).replace(" ", "")
        number = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
        return min(1.0, max(0.0, number))


def extract_answer(text: str) -> str:
    """The normalised answer in ``text`` (see :attr:`Post.answer`)."""
    match = _ANSWER.search(text)
    said = match.group(1) if match else text
    numbers: list[str] = _NUMBER.findall(said)
    if numbers:
        value = numbers[0] if match else numbers[-1]
        return value.replace(",", "").rstrip(".")
    first = said.strip().splitlines()[0] if said.strip() else ""
    return re.sub(r"[^\w\s-]", "", first).strip().lower()


class Blackboard:
    """Posts in order; ``max_message_chars`` and ``max_messages`` bound it."""

    def __init__(self, max_message_chars: int, max_messages: int) -> None:
        self.max_message_chars = max_message_chars
        self.max_messages = max_messages
        self.posts: list[Post] = []

    def add(self, post: Post) -> Post:
        """Append ``post``. Raises :class:`BlackboardFull` (413) or :class:`RequestError`."""
        if len(post.text) > self.max_message_chars:
            raise BlackboardFull(
                f"a post by '{post.agent}' is {len(post.text)} characters; the blackboard "
                f"limit is {self.max_message_chars} (blackboard.max_message_chars)",
                param="blackboard.max_message_chars",
            )
        if len(self.posts) >= self.max_messages:
            raise RequestError(
                f"the blackboard holds its limit of {self.max_messages} posts "
                "(blackboard.max_messages)",
                param="blackboard.max_messages",
            )
        self.posts.append(post)
        return post

    def __iter__(self) -> Iterator[Post]:
        return iter(self.posts)

    def __len__(self) -> int:
        return len(self.posts)

    @property
    def task(self) -> str:
        return next((p.text for p in self.posts if p.kind == "task"), "")

    def recent(self, count: int, *, exclude: str | None = None) -> list[Post]:
        """The last ``count`` posts after the task, optionally not by ``exclude``."""
        said = [p for p in self.posts if p.kind != "task" and p.agent != exclude]
        return said[-count:] if count else []

    def beliefs(self) -> dict[str, str]:
        """Each agent's latest stated answer: what theory-of-mind prompts summarise."""
        latest: dict[str, str] = {}
        for post in self.posts:
            if post.kind in ("message", "judge") and post.answer:
                latest[post.agent] = post.answer
        return latest

    def by(self, agent: str) -> list[Post]:
        return [p for p in self.posts if p.agent == agent]
