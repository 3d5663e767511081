"""Whether a stored answer may answer another wording: what sentence embeddings miss.

A semantic cache hit needs the two wordings' embeddings close *and* no sign that they ask
different things. Embeddings miss exactly the small words that change an answer: the static
MiniLM gives "Convert 10 miles to km" and "Convert 10 km to miles" cosine 1.000 (it averages
its tokens), "Cancel my order" and "Don't cancel my order" 0.961, "Summarise this in French"
and "... in English" 0.935. :func:`conflict` names the first difference of these kinds:

- **numbers**: the same numbers ("order 1042" never answers "order 1043");
- **names**: the same capitalised words that do not open a sentence (places, languages,
  people, products: "Oslo" / "Lisbon", "Spanish" / "German"), compared in lower case;
- **negation**: as many negations (not, no, never, without, ...n't ...) in both;
- **direction**: the same contrast words (before / after, over / under, above / below, than,
  vs), no relation word (to, from, than, ...) with its two neighbouring content words
  swapped ("miles to km" / "km to miles"), and no sentence with exactly another's content
  words in another order ("Is tea healthier than coffee?" / "Is coffee healthier than
  tea?"); reordered sentences still match.

A conflict makes the lookup miss, never a wrong hit; the price is an occasional paraphrase
that pays for its own call (measured by ``bench/response_cache.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)?")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
SENTENCE_END = re.compile(r"[.!?:;\n]")
NEGATIONS = frozenset([
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without",
    "cannot",
])  # fmt: skip
STOP = frozenset([
    "a", "an", "the", "to", "of", "in", "on", "at", "for", "from", "by", "with", "and", "or",
    "but", "if", "then", "than", "as", "is", "are", "was", "were", "be", "been", "being", "am",
    "do", "does", "did", "doing", "have", "has", "had", "i", "me", "my", "mine", "you", "your",
    "yours", "we", "us", "our", "they", "them", "their", "he", "him", "his", "she", "her",
    "it", "its", "this", "that", "these", "those", "what", "which", "who", "whom", "whose",
    "when", "where", "why", "how", "can", "could", "would", "should", "will", "shall", "may",
    "might", "must", "please", "just", "so", "about", "into", "there", "here", "any", "some",
    "all", "get", "got",
])  # fmt: skip


CONTRASTS = frozenset(
    ["before", "after", "over", "under", "above", "below", "than", "vs", "versus"]
)
RELATIONS = CONTRASTS | {"to", "into", "from", "per"}

NOT_CONTENT = STOP | RELATIONS


@dataclass(frozen=True, slots=True)
class Anchors:
    """The parts of a wording that must match for two wordings to share an answer.

    ``relations``: (relation word, the content word before it, the one after it) within a
    sentence, e.g. ("to", "miles", "km"); ``contrasts``: its contrast words, sorted;
    ``sentences``: each sentence's content words in order."""

    numbers: tuple[str, ...]
    names: tuple[str, ...]
    negations: int
    relations: frozenset[tuple[str, str, str]]
    contrasts: tuple[str, ...]
    sentences: tuple[tuple[str, ...], ...]


def anchors_of(text: str) -> Anchors:
    """The anchors of ``text``: its sorted numbers and names, how many negations it has,
    and the words either side of each relation word."""
    names: set[str] = set()
    tokens: list[tuple[str, int]] = []  # (lower-case token, sentence number)
    negations, end, sentence = 0, -1, 0
    for match in WORD.finditer(text):
        token = match.group()
        opens = end < 0 or SENTENCE_END.search(text[end : match.start()]) is not None
        sentence += opens and end >= 0
        end = match.end()
        lower = token.lower().replace("’", "'")
        if lower in NEGATIONS or lower.endswith("n't"):
            negations += 1
            continue
        if token[0].isupper() and not opens and len(token) > 1:
            names.add(lower)
        tokens.append((lower, sentence))
    return Anchors(
        numbers=tuple(sorted(NUMBER.findall(text))),
        names=tuple(sorted(names)),
        negations=negations,
        relations=frozenset(_relations(tokens)),
        contrasts=tuple(sorted(w for w, _ in tokens if w in CONTRASTS)),
        sentences=tuple(
            tuple(w for w, n in tokens if n == k and w not in NOT_CONTENT)
            for k in sorted({n for _, n in tokens})
        ),
    )


def _relations(tokens: list[tuple[str, int]]) -> list[tuple[str, str, str]]:
    """(relation, content word before, content word after) for each relation word."""
    content = [i for i, (word, _) in enumerate(tokens) if word not in NOT_CONTENT]
    found = []
    for i, (word, sentence) in enumerate(tokens):
        if word not in RELATIONS:
            continue
        before = [j for j in content if j < i and tokens[j][1] == sentence]
        after = [j for j in content if j > i and tokens[j][1] == sentence]
        if before and after:
            found.append((word, tokens[before[-1]][0], tokens[after[0]][0]))
    return found


def conflict(asked: Anchors, stored: Anchors) -> str | None:
    """Why ``stored``'s answer may not answer ``asked`` (the first difference found), or
    None when nothing but the embedding's similarity is left to decide."""
    if asked.numbers != stored.numbers:
        return "different numbers"
    if asked.names != stored.names:
        return "different names"
    if asked.negations != stored.negations:
        return "a negation in one only"
    if asked.contrasts != stored.contrasts:
        return "different contrast words"
    for relation, left, right in asked.relations:
        if left != right and (relation, right, left) in stored.relations:
            return f"'{left} {relation} {right}' reversed"
    for mine in asked.sentences:
        for theirs in stored.sentences:
            if len(mine) > 1 and mine != theirs and sorted(mine) == sorted(theirs):
                return "the same words in another order"
    return None
