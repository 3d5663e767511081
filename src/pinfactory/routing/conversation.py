"""Routing on the conversation, not only its last turn.

A follow-up such as "And what about 1043?" means nothing alone: it continues
the previous user turn ("What's the status of order 1042?"). These helpers
tell a follow-up from a new request and build the text to route it on.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pinfactory.request import Message, Request

FOLLOW_UP_WORDS = 14
"""A follow-up is short: at most this many words."""

_CONTINUES = re.compile(
    r"^\W*(?:and|also|plus|then|now|ok(?:ay)?\W+and|what about|how about|same(?: question| thing)?"
    r" for|and for|what of|and what about)\b",
    re.IGNORECASE,
)
_ONLY_AN_ID = re.compile(r"^\W*(?:#\s*)?\d+\W*(?:too|as well|also)?\W*$", re.IGNORECASE)


def user_turns(request: Request) -> list[str]:
    return [m.content for m in request.messages if m.role == "user"]


def is_follow_up(text: str) -> bool:
    """Whether a user turn continues the previous one: short, and opening with a connective
    ("and", "what about", "same for", ...) or nothing but a number ("1041 too?")."""
    if len(text.split()) > FOLLOW_UP_WORDS:
        return False
    return bool(_CONTINUES.search(text) or _ONLY_AN_ID.search(text))


def previous_turn(request: Request) -> Request | None:
    """The request as it stood at the previous user turn (None for a first turn)."""
    turns = user_turns(request)
    if len(turns) < 2:
        return None
    return replace(request, messages=(Message("user", turns[-2]),))


def with_context(request: Request) -> Request:
    """One user turn holding the previous user turn and the last, to route a follow-up on."""
    turns = user_turns(request)
    return replace(request, messages=(Message("user", "\n".join(turns[-2:])),))
