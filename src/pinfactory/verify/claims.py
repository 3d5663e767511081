"""Splitting text into claims (sentences) and claims into the tokens checkers compare.

A *claim* is one sentence of an answer, with the citation markers (``[1]``,
``[2, 3]``) it carries taken out and kept apart. The same splitter cuts
evidence into sentences, so an answer sentence is compared with evidence
sentences on equal terms.

Tokens are lower-cased Snowball stems with stopwords removed; numbers are
normalised (``1,200`` and ``1200`` are one number, ``twelve`` is ``12``) and
named entities are the capitalised words a sentence does not start with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from Stemmer import Stemmer

_CITATION = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and a capital,
# digit or quote; or at a full stop glued to a capital ("century.First", common in scraped text).
_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])"
    r"|(?<=[a-z0-9\"”)][.!?])(?=[A-Z][a-z])"
    r"|\n\s*\n+|\n(?=\s*(?:[-*•]|\d+[.)])\s)"
)
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "jr",
        "sr",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "corp",
        "no",
        "nos",
        "fig",
        "approx",
        "dept",
        "est",
        "e.g",
        "i.e",
        "u.s",
        "u.k",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mt",
        "ft",
        "gen",
        "col",
        "lt",
        "sgt",
    ]
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,:/]\d+)*%?")
_NUMBER = re.compile(r"^\d+(?:[.,:/]\d+)*%?$")

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "one",
        "ones",
        "s",
        "t",
        "d",
        "ll",
        "re",
        "ve",
        "m",
        "o",
        "y",
        "yes",
        "also",
        "well",
        "may",
        "might",
        "must",
        "shall",
        "upon",
        "via",
        "per",
        "known",
        "called",
        "named",
        "many",
        "much",
        "several",
        "various",
    ]
)
NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "without",
        "cannot",
        "n't",
        "nowhere",
    ]
)
MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
)
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "first": "1st", "second": "2nd", "third": "3rd",
    "fourth": "4th", "fifth": "5th", "sixth": "6th", "seventh": "7th", "eighth": "8th",
    "ninth": "9th", "tenth": "10th", "single": "1", "double": "2", "twice": "2", "once": "1",
    "dozen": "12", "half": "0.5",
}  # fmt: skip
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")


@dataclass(frozen=True, slots=True)
class Claim:
    """One sentence of an answer and the citation numbers it carries."""

    text: str
    citations: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a sentence says, as sets a checker can compare."""

    content: frozenset[str]
    numbers: frozenset[str]
    entities: frozenset[str]
    negated: bool
    months: frozenset[str]
    sequence: tuple[str, ...] = ()

    @property
    def bigrams(self) -> frozenset[tuple[str, str]]:
        """Pairs of consecutive content items: word order, which bags of words lose."""
        return frozenset(zip(self.sequence, self.sequence[1:], strict=False))


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; abbreviations (``Dr.``, ``U.S.``) and decimals do not end one."""
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        before = text[start : match.start()].rstrip()
        last = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.split() else ""
        if before.endswith(".") and (last in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last)):
            continue
        pieces.append(text[start : match.start()])
        start = match.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def split_claims(text: str) -> list[Claim]:
    """The claims of an answer: its sentences, each with its citation numbers removed."""
    claims = []
    for sentence in split_sentences(text):
        numbers: list[int] = []
        for group in _CITATION.findall(sentence):
            numbers.extend(int(n) for n in re.split(r"\s*[,;]\s*", group))
        bare = _CITATION.sub("", sentence).strip()
        if _WORD.search(bare):
            claims.append(Claim(bare, tuple(dict.fromkeys(numbers))))
    return claims


def strip_citations(text: str) -> str:
    return _CITATION.sub("", text)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer:
    return Stemmer("english")


def normalise_number(word: str) -> str:
    """``1,200`` -> ``1200``, ``3.50`` -> ``3.5``, ``twelve`` -> ``12``, ``4th`` -> ``4th``."""
    lowered = word.lower()
    if lowered in _NUMBER_WORDS:
        return _NUMBER_WORDS[lowered]
    ordinal = _ORDINAL.match(lowered)
    if ordinal:
        return ordinal.group(1) + lowered[len(ordinal.group(1)) :]
    text = lowered.rstrip("%")
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        text = text.replace(",", "")
    if re.fullmatch(r"\d+\.\d+", text):
        text = text.rstrip("0").rstrip(".")
    return text + ("%" if lowered.endswith("%") else "")


@lru_cache(maxsize=65536)
def tokens(sentence: str) -> Tokens:
    """Content stems, numbers, entity stems, negation and months of one sentence."""
    words = _WORD.findall(sentence.replace("n't", " not").replace("n’t", " not"))
    stemmer = _stemmer()
    content: set[str] = set()
    numbers: set[str] = set()
    entities: set[str] = set()
    months: set[str] = set()
    sequence: list[str] = []
    negated = False
    for index, word in enumerate(words):
        lowered = word.lower().strip("'’-")
        if lowered.endswith(("'s", "’s")):
            lowered = lowered[:-2]
        if lowered in NEGATIONS:
            negated = True
            continue
        if _NUMBER.match(word) or _ORDINAL.match(lowered):
            numbers.add(normalise_number(word))
            sequence.append(normalise_number(word))
            continue
        if lowered in _NUMBER_WORDS and lowered not in ("one", "once", "single", "half"):
            numbers.add(_NUMBER_WORDS[lowered])
            sequence.append(_NUMBER_WORDS[lowered])
            continue
        if lowered in MONTHS and (word[0].isupper() or lowered != "may"):
            months.add(lowered)
            sequence.append(lowered)
            continue
        if lowered in STOPWORDS or not lowered:
            continue
        stem = stemmer.stemWord(lowered)
        content.add(stem)
        sequence.append(stem)
        if word[0].isupper() and (index > 0 or len(words) <= 4):
            entities.add(stem)
    return Tokens(
        frozenset(content),
        frozenset(numbers),
        frozenset(entities),
        negated,
        frozenset(months),
        tuple(sequence),
    )
