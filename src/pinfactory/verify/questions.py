"""A short answer read with its question: the statement the two make together.

"Mary Pierce" says nothing alone; asked "Between Kim Clijsters and Mary Pierce, who is
older?", it claims "Between Kim Clijsters and Mary Pierce, Mary Pierce is older". The
support model was trained on statements, so the answer is put in place of the
question's wh-phrase:

- ``who|what`` + verb: the answer takes the wh-word's place
  ("Who directed Jaws?" + "Spielberg" -> "Spielberg directed Jaws");
- ``which|what`` + noun phrase + verb: the answer is that noun phrase
  ("Which runner-up was born in 1981?" + "Anna Kournikova" ->
  "Anna Kournikova is the runner-up that was born in 1981");
- a lead-in before the wh-word ("Between X and Y, who ...") is kept in front;
- anything else (when, where, how many, did-questions): the question, then the
  answer ("When did it open? 1998.").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pinfactory.verify.claims import tokens

_VERBISH = frozenset(
    {
        *("is", "was", "are", "were", "has", "had", "have", "became", "becomes", "become"),
        *("can", "could", "will", "would", "should", "may", "might", "shall", "must"),
    }
)
_DO = frozenset({"did", "does", "do"})
_WH_START = re.compile(r"(?:^|,\s*)(who|what|which|whose)\b", re.IGNORECASE)
_VERB_SUFFIX = re.compile(r"^[a-z]+(?:ed|es)$")


def question_claim(question: str, answer: str) -> str:
    """The declarative claim of ``answer`` to ``question`` (both plain text)."""
    asked = question.strip().rstrip(" ?").strip()
    said = answer.strip().rstrip(" .!").strip()
    if not asked:
        return said
    match = _WH_START.search(asked)
    if match is None:
        return f"{asked}? {said}."
    lead = asked[: match.start()].strip(" ,")
    rest = asked[match.start(1) :].split()
    body = _fill(rest, said)
    if body is None:
        return f"{asked}? {said}."
    return f"{lead}, {body}." if lead else f"{body}."


def _fill(words: list[str], answer: str) -> str | None:
    """``words`` start with a wh-word: the answer put in its place, or None."""
    wh = words[0].lower()
    tail = words[1:]
    if not tail:
        return None
    first = tail[0].lower()
    if first in _DO:
        return None  # "what did X do": the answer is an object; no safe rewrite
    if wh != "whose" and (first in _VERBISH or (wh == "who" and _VERB_SUFFIX.match(first))):
        return " ".join([answer, *tail])
    for k, word in enumerate(tail[1:], 1):
        lowered = word.lower()
        if lowered in _DO:
            return None
        if lowered in _VERBISH or _VERB_SUFFIX.match(word):  # capitalised: a name
            noun, rest = " ".join(tail[:k]), " ".join(tail[k:])
            if wh == "whose":
                return f"{answer}'s {noun} {rest}"
            return f"{answer} is the {noun} that {rest}"
    return None


def stated_about(question: str, answer: str, sentences: Sequence[str]) -> bool:
    """Whether a short answer's numbers are stated about what the question asks.

    "10 business days." to "What is the cut-off time for same-day dispatch?" reads as
    supported by a passage that gives 10 business days for refunds: the words are there,
    about something else. When some evidence sentence states every number of ``answer``,
    one of them must also hold a content word of ``question`` (here: "dispatch"); an answer
    without numbers, or whose numbers no sentence states (the model and the quantity rules
    judge those), is not held to this.
    """
    said = tokens(answer)
    focus = tokens(question).content
    if not said.numbers or not focus:
        return True
    stating = [seen for seen in map(tokens, sentences) if said.numbers <= seen.numbers]
    return not stating or any(focus & seen.content for seen in stating)
