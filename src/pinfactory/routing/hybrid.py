"""Hybrid routing: rules first, then semantic or learned routing, then a cascade.

Hand-written rules claim what they are sure of; a semantic (or learned)
router places what no rule claims; when it abstains (no route above its
threshold) the request falls through to a cascade if one is declared, else
to the fallback member. The decision's reason tells which stage placed it.

```yaml
routing:
  kind: hybrid
  fallback: local
  rules: [...]                          # as for kind: rules
  semantic: {routes: [...]}             # as for kind: semantic (or `learned:`)
  cascade: {tiers: [local, tier:frontier], scorer: answered}
  conversation: true                    # route follow-ups with the turn they continue
```
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict

from pinfactory.errors import TeamFileError
from pinfactory.members.base import Member
from pinfactory.request import Request
from pinfactory.routing.base import Decision, Router
from pinfactory.routing.cascade import Cascade
from pinfactory.routing.conversation import is_follow_up, previous_turn, with_context
from pinfactory.routing.learned_kinds import LEARNED_KINDS
from pinfactory.routing.rules import Rule, RulesRouter
from pinfactory.routing.semantic import SemanticRouter
from pinfactory.tiers import RouterContext


class HybridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = "hybrid"
    fallback: str
    rules: list[Rule] = []
    semantic: dict[str, Any] | None = None
    learned: dict[str, Any] | None = None
    cascade: dict[str, Any] | None = None
    conversation: bool = False


class HybridRouter:
    kind = "hybrid"

    def __init__(
        self,
        rules: RulesRouter,
        *,
        second: Router | None = None,
        cascade: Cascade | None = None,
        conversation: bool = False,
    ) -> None:
        """``conversation``: place a later turn as part of its conversation (see :meth:`decide`)."""
        self.rules = rules
        self.second = second
        self.cascade = cascade
        self.conversation = conversation

    @property
    def fallback(self) -> str:
        return self.rules.fallback

    def decide(self, request: Request) -> Decision:
        """Place the last user turn; with ``conversation``, as part of its conversation.

        A turn a rule claims is placed by it. A follow-up ("And what about 1043?") is placed
        on the previous user turn and itself together. Any other later turn goes where the
        conversation went when that member is dearer than the turn alone would get (a
        question about a proof stays with the member that wrote the proof; "thanks" after
        an order lookup does not go back to the orders tool).
        """
        own = self._decide_turn(request)
        before = previous_turn(request) if self.conversation else None
        if before is None or (own.router == RulesRouter.kind and not own.fallback):
            return own
        if is_follow_up(request.text):
            placed = self._decide_turn(with_context(request))
            return replace(
                placed, reason=f"follow-up, placed with the turn before: {placed.reason}"
            )
        earlier = self._decide_turn(before)
        if earlier.member != own.member and earlier.estimated_cost_usd > own.estimated_cost_usd:
            return replace(
                earlier,
                reason=f"continues a conversation placed on '{earlier.member}' "
                f"({earlier.reason}); the last turn alone: '{own.member}'",
            )
        return own

    def _decide_turn(self, request: Request) -> Decision:
        found = self.rules.match(request)
        if found is not None:
            return self.rules.decide(request)
        why = "no rule matched"
        if self.second is not None:
            placed = self.second.decide(request)
            if not placed.fallback:
                return replace(placed, reason=f"{why}; {placed.reason}")
            why = f"{why}; {placed.reason.split('; fallback')[0]}"
        if self.cascade is not None and len(self.cascade.plan()) > 1:
            planned = self.cascade.decide(request)
            if not planned.fallback:
                return replace(planned, reason=f"{why}; {planned.reason}")
        fallback = self.rules.decide(request)
        return replace(
            fallback,
            router=self.kind,
            reason=f"{why}; fallback '{self.fallback}'",
        )

    def composites(self) -> list[Member]:
        """The cascade's tiers as one member, when a cascade is declared."""
        return self.cascade.composites() if self.cascade is not None else []

    @classmethod
    def from_config(cls, config: dict[str, Any], context: RouterContext) -> HybridRouter:
        parsed = HybridConfig.model_validate(config)
        rules = RulesRouter.from_config(
            {"kind": "rules", "fallback": parsed.fallback, "rules": config.get("rules", [])},
            context,
        )
        if parsed.semantic is not None and parsed.learned is not None:
            raise TeamFileError("hybrid: give 'semantic' or 'learned', not both")
        second: Router | None = None
        if parsed.semantic is not None:
            second = SemanticRouter.from_config(
                {"kind": "semantic", "fallback": parsed.fallback, **parsed.semantic}, context
            )
        elif parsed.learned is not None:
            kind = parsed.learned.get("kind")
            if kind not in LEARNED_KINDS:
                raise TeamFileError(
                    f"hybrid.learned.kind '{kind}'; allowed: {', '.join(LEARNED_KINDS)}"
                )
            second = LEARNED_KINDS[kind].from_config(
                {"fallback": parsed.fallback, **parsed.learned}, context
            )
        cascade = None
        if parsed.cascade is not None:
            cascade = Cascade.from_config(
                {"kind": "cascade", "fallback": parsed.fallback, **parsed.cascade}, context
            )
        return cls(rules, second=second, cascade=cascade, conversation=parsed.conversation)
