"""Hand-written routing rules: named, prioritised, first match wins.

A rule's ``when`` is a condition; the keys of one condition must all hold
(``all``/``any``/``not`` nest further conditions). Rules compile once, at
load time, into plain predicates, so a decision is a few regex searches.

```yaml
rules:
  - name: order-status
    priority: 100
    when: {regex: '\\border\\s*#?\\d{3,}'}
    route: orders
    expect: ["What's the status of order 1042?"]
```
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pinfactory.capabilities import Capability, capability_names, tool_names
from pinfactory.errors import TeamFileError
from pinfactory.request import Request
from pinfactory.routing.base import (
    Decision,
    MemberTable,
    member_cost,
    member_tier,
    resolve_member,
)
from pinfactory.tiers import RouterContext

Predicate = Callable[[Request], bool]


class Condition(BaseModel):
    """What a request must look like. Every key given must hold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    keywords: list[str] | None = Field(default=None, description="any of these words")
    all_keywords: list[str] | None = Field(default=None, description="all of these words")
    regex: str | None = None
    min_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    min_turns: int | None = Field(default=None, ge=0)
    max_turns: int | None = Field(default=None, ge=0)
    has_documents: bool | None = None
    has_tools: bool | None = None
    tools: list[str] | None = Field(default=None, description="any of these tools is offered")
    needs: list[Capability] | None = Field(
        default=None, description="the request asks for all of these capabilities"
    )
    unit: list[str] | None = None
    user: list[str] | None = None
    tags: list[str] | None = Field(default=None, description="any of these request tags")
    headers: dict[str, str] | None = Field(default=None, description="header -> regex")
    all_of: list[Condition] | None = Field(default=None, alias="all")
    any_of: list[Condition] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            _compile(pattern)
        return pattern

    @field_validator("headers")
    @classmethod
    def _valid_header_patterns(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        for pattern in (headers or {}).values():
            _compile(pattern)
        return headers

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError("a condition needs at least one key (keywords, regex, all, any, ...)")
        return self

    def compile(self) -> Predicate:
        checks: list[Predicate] = []
        if self.keywords:
            any_word = _word_pattern(self.keywords)
            checks.append(lambda r: any_word.search(r.text) is not None)
        if self.all_keywords:
            words = [_word_pattern([w]) for w in self.all_keywords]
            checks.append(lambda r: all(w.search(r.text) for w in words))
        if self.regex is not None:
            pattern = _compile(self.regex)
            checks.append(lambda r: pattern.search(r.text) is not None)
        checks.extend(self._numeric_checks())
        if self.has_documents is not None:
            want_docs = self.has_documents
            checks.append(lambda r: bool(r.documents) == want_docs)
        if self.has_tools is not None:
            want_tools = self.has_tools
            checks.append(lambda r: bool(r.tools) == want_tools)
        if self.tools is not None:
            offered = frozenset(self.tools)
            checks.append(lambda r: not offered.isdisjoint(tool_names(r)))
        if self.needs is not None:
            asked = frozenset(self.needs)
            checks.append(lambda r: asked <= capability_names(r))
        checks.extend(self._caller_checks())
        if self.all_of:
            parts = [c.compile() for c in self.all_of]
            checks.append(lambda r: all(p(r) for p in parts))
        if self.any_of:
            options = [c.compile() for c in self.any_of]
            checks.append(lambda r: any(p(r) for p in options))
        if self.not_ is not None:
            negated = self.not_.compile()
            checks.append(lambda r: not negated(r))
        return lambda r: all(check(r) for check in checks)

    def _numeric_checks(self) -> list[Predicate]:
        checks: list[Predicate] = []
        if self.min_tokens is not None:
            low = self.min_tokens
            checks.append(lambda r: r.prompt_tokens >= low)
        if self.max_tokens is not None:
            high = self.max_tokens
            checks.append(lambda r: r.prompt_tokens <= high)
        if self.min_turns is not None:
            few = self.min_turns
            checks.append(lambda r: r.turns >= few)
        if self.max_turns is not None:
            many = self.max_turns
            checks.append(lambda r: r.turns <= many)
        return checks

    def _caller_checks(self) -> list[Predicate]:
        checks: list[Predicate] = []
        if self.unit is not None:
            units = frozenset(self.unit)
            checks.append(lambda r: r.unit in units)
        if self.user is not None:
            users = frozenset(self.user)
            checks.append(lambda r: r.user in users)
        if self.tags is not None:
            tags = frozenset(self.tags)
            checks.append(lambda r: not tags.isdisjoint(r.tags))
        if self.headers:
            wanted = {name.lower(): _compile(p) for name, p in self.headers.items()}
            checks.append(
                lambda r: all(p.search(r.headers.get(n, "")) is not None for n, p in wanted.items())
            )
        return checks


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    priority: int = 0
    when: Condition
    route: str = Field(
        description="a member name, or 'tier:NAME' for the cheapest member of a tier"
    )
    expect: list[str] = Field(default=[], description="queries this rule must claim")


class RulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = "rules"
    fallback: str
    rules: list[Rule] = []


class RulesRouter:
    """First matching rule (highest priority, then file order) wins."""

    kind = "rules"

    def __init__(
        self,
        rules: Sequence[Rule],
        fallback: str,
        *,
        members: MemberTable | None = None,
    ) -> None:
        """``members`` maps each available member to (tier, estimated cost)."""
        self.rules = list(rules)
        self.fallback = fallback
        self.members = members or {}
        self._compiled = self._compile()

    def _compile(self) -> list[tuple[Rule, str, Predicate]]:
        ordered = sorted(enumerate(self.rules), key=lambda pair: (-pair[1].priority, pair[0]))
        compiled = []
        for _, rule in ordered:
            target = resolve_member(self.members, rule.route)
            if target is not None:
                compiled.append((rule, target, rule.when.compile()))
        return compiled

    def match(self, request: Request) -> tuple[Rule, str] | None:
        for rule, target, predicate in self._compiled:
            if predicate(request):
                return rule, target
        return None

    def decide(self, request: Request) -> Decision:
        found = self.match(request)
        if found is None:
            return Decision(
                member=self.fallback,
                reason=f"no rule matched; fallback '{self.fallback}'",
                router=self.kind,
                scores={self.fallback: 1.0},
                confidence=0.5,
                estimated_cost_usd=member_cost(self.members, self.fallback),
                tier=member_tier(self.members, self.fallback),
                fallback=True,
            )
        rule, member = found
        return Decision(
            member=member,
            reason=f"rule '{rule.name}' matched",
            router=self.kind,
            scores={member: 1.0},
            confidence=1.0,
            estimated_cost_usd=member_cost(self.members, member),
            tier=member_tier(self.members, member),
            rule=rule.name,
        )

    def check_expectations(self) -> list[str]:
        """Run each rule's ``expect`` examples; return one line per failure."""
        failures = []
        for rule in self.rules:
            for query in rule.expect:
                got = self.decide(Request.from_text(query))
                if got.rule != rule.name:
                    failures.append(
                        f"rule '{rule.name}': expected to claim {query!r}, "
                        f"but it went to '{got.member}' ({got.reason})"
                    )
        return failures

    @classmethod
    def from_config(cls, config: dict[str, Any], context: RouterContext) -> RulesRouter:
        parsed = RulesConfig.model_validate(config)
        for rule in parsed.rules:
            if context.unknown(rule.route):
                problem = f"routes to unknown member '{rule.route}'; members: {context.allowed()}"
                raise TeamFileError(f"rule '{rule.name}' {problem}")
        return cls(parsed.rules, parsed.fallback, members=dict(context.members))


def _word_pattern(words: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w.strip()) for w in words if w.strip())
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
