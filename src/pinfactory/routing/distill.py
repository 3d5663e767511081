"""Readable rules distilled from a learned router: a short decision list a person can edit.

Given prompts and the member a learned router (the teacher) picks for each, a
decision list is grown by sequential covering: at each step, for every member, a
rule ``keywords: [w1, w2, ...] -> member`` is built greedily (adding the word whose
prompts the teacher most often sends to that member, while the rule's net gain --
prompts it claims that the teacher agrees with, minus ``penalty`` times those it
does not -- grows), and length rules (``max_tokens`` / ``min_tokens``) compete with
them; the best rule is appended, the prompts it claims are removed, and the next
step starts. What no rule claims goes to the fallback (the teacher's commonest
choice among them). The result is written in the team file's rule syntax
(:class:`~pinfactory.routing.rules.RulesConfig`) with ``expect:`` examples, so
``pinfactory rules test`` runs it and :class:`~pinfactory.routing.rules.RulesRouter`
replays it; :func:`fidelity` says how often it agrees with the teacher.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pinfactory.request import Request, estimate_tokens
from pinfactory.routing.rules import Condition, Rule, RulesConfig, RulesRouter

Indices = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
_WORD = re.compile(r"(?<!\w)[a-z]\w{2,}")
_STOPWORDS = """the and for you your are was were this that with what how can have has from not
but its all any will would could should about into out there their they them then than when which
who whom why where been being does did doing just also some such"""
_STOP = frozenset(_STOPWORDS.split())


@dataclass(frozen=True)
class Distilled:
    config: RulesConfig
    fidelity: float  # agreement with the teacher on the prompts it was distilled from


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def distill(
    prompts: Sequence[str],
    teacher: Sequence[str],
    *,
    max_rules: int = 12,
    max_words: int = 12,
    penalty: float = 2.0,
    min_claims: int = 5,
    vocabulary: int = 3000,
) -> Distilled:
    """A decision list mimicking ``teacher`` (one member name per prompt)."""
    members = sorted(set(teacher))
    labels = np.array([members.index(t) for t in teacher], dtype=np.int64)
    bags = [_words(p) for p in prompts]
    counts: dict[str, int] = {}
    for bag in bags:
        for w in bag:
            counts[w] = counts.get(w, 0) + 1
    vocab = [w for w, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c >= min_claims]
    vocab = vocab[:vocabulary]
    has = np.zeros((len(prompts), len(vocab)), dtype=bool)
    column = {w: j for j, w in enumerate(vocab)}
    for i, bag in enumerate(bags):
        for w in bag:
            j = column.get(w)
            if j is not None:
                has[i, j] = True
    tokens = np.array([estimate_tokens(p) for p in prompts])
    open_ = np.ones(len(prompts), dtype=bool)
    rules: list[Rule] = []
    for step in range(max_rules):
        best: tuple[float, Rule, Bools] | None = None
        for m, member in enumerate(members):
            found = _keyword_rule(has, labels, open_, m, vocab, max_words, penalty, min_claims)
            found_len = _length_rule(tokens, labels, open_, m, penalty, min_claims)
            for candidate in (found, found_len):
                if candidate is None:
                    continue
                gain, condition, claimed = candidate
                if best is None or gain > best[0]:
                    rule = Rule(
                        name=f"r{step + 1}-{_slug(member)}",
                        priority=max_rules - step,
                        when=condition,
                        route=member,
                    )
                    best = (gain, rule, claimed)
        if best is None or best[0] <= 0:
            break
        _, rule, claimed = best
        agreed = np.flatnonzero(claimed & (labels == members.index(rule.route)))
        rule = rule.model_copy(update={"expect": [prompts[i][:200] for i in agreed[:2]]})
        rules.append(rule)
        open_ &= ~claimed
    rest = labels[open_] if open_.any() else labels
    fallback = members[int(np.bincount(rest, minlength=len(members)).argmax())]
    config = RulesConfig(kind="rules", fallback=fallback, rules=rules)
    return Distilled(config, fidelity(config, prompts, teacher))


def _keyword_rule(
    has: Bools,
    labels: Indices,
    open_: Bools,
    member: int,
    vocab: list[str],
    max_words: int,
    penalty: float,
    min_claims: int,
) -> tuple[float, Condition, Bools] | None:
    mine = open_ & (labels == member)
    if mine.sum() < min_claims or not vocab:
        return None
    hits = has[mine].sum(axis=0)
    misses = has[open_ & ~mine].sum(axis=0)
    order = np.argsort(-(hits - penalty * misses))
    claimed = np.zeros(len(labels), dtype=bool)
    words: list[str] = []
    gain = 0.0
    for j in order[: max_words * 4]:
        trial = claimed | (has[:, j] & open_)
        trial_gain = float((trial & mine).sum() - penalty * (trial & ~mine).sum())
        if trial_gain > gain:
            claimed, gain = trial, trial_gain
            words.append(vocab[j])
            if len(words) >= max_words:
                break
    if not words or claimed.sum() < min_claims:
        return None
    return gain, Condition(keywords=words), claimed


def _length_rule(
    tokens: Indices, labels: Indices, open_: Bools, member: int, penalty: float, min_claims: int
) -> tuple[float, Condition, Bools] | None:
    mine = open_ & (labels == member)
    if mine.sum() < min_claims:
        return None
    best: tuple[float, Condition, Bools] | None = None
    for q in (10, 25, 50, 75, 90):
        cut = int(np.percentile(tokens[open_], q))
        for condition, claimed in (
            (Condition(max_tokens=cut), open_ & (tokens <= cut)),
            (Condition(min_tokens=cut), open_ & (tokens >= cut)),
        ):
            gain = float((claimed & mine).sum() - penalty * (claimed & ~mine).sum())
            if claimed.sum() >= min_claims and (best is None or gain > best[0]):
                best = (gain, condition, claimed)
    return best


def fidelity(config: RulesConfig, prompts: Sequence[str], teacher: Sequence[str]) -> float:
    """Share of prompts the rules send where the teacher does."""
    chosen = decide_all(config, prompts)
    return float(np.mean([a == b for a, b in zip(chosen, teacher, strict=True)]))


def decide_all(config: RulesConfig, prompts: Sequence[str]) -> list[str]:
    router = RulesRouter(config.rules, config.fallback)
    return [router.decide(Request.from_text(p)).member for p in prompts]


def _slug(member: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", member.split("/")[-1].lower()).strip("-")
