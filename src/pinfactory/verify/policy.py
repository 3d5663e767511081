"""The ``verification`` block of a team file, and the escalation it can produce.

```yaml
verification:
  verifiers: [grounding, citations]   # which checks run; also package.module:Class
  only_with_evidence: true            # skip answers with no documents/passages to check
  min_confidence: 0.6                 # below this the answer escalates
  on_low_confidence: caveat           # escalate | review | caveat
  escalate_to: tier:frontier          # for `escalate`: a member or tier:<name>
  cross_check: null                   # a second member to compare answers with
  self_consistency: {members: [local], samples: 3, temperature: 0.7, min_agreement: 0.6}
  guards: {redact_input_pii: true, redact_output_pii: false, screen_injection: true}
  units: {sales: {redact_output_pii: true}}   # per-unit guard overrides
```
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pinfactory.outcome import Escalation, finding_json
from pinfactory.plugins import PluginNotFound, import_object
from pinfactory.verify.base import Verifier
from pinfactory.verify.guards import GuardSpec

BUILT_IN_VERIFIERS = ("grounding", "citations")


class SelfConsistencySpec(BaseModel):
    """Sample the named members ``samples`` times; low agreement is a finding and an event."""

    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(min_length=1, description="members whose answers are sampled")
    samples: int = Field(default=3, ge=2, le=10)
    temperature: float = Field(default=0.7, gt=0, le=2)
    min_agreement: float = Field(default=0.6, ge=0, le=1)


class VerificationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verifiers: list[str] = Field(
        default=["grounding"], description="grounding, citations, or package.module:Class"
    )
    only_with_evidence: bool = True
    min_confidence: float = Field(default=0.6, ge=0, le=1)
    on_low_confidence: Literal["escalate", "review", "caveat"] = "caveat"
    escalate_to: str | None = Field(default=None, description="member name or tier:<name>")
    cross_check: str | None = Field(default=None, description="a member to compare answers with")
    self_consistency: SelfConsistencySpec | None = None
    guards: GuardSpec = GuardSpec()
    units: dict[str, dict[str, Any]] = {}

    def problems(self, members: dict[str, str]) -> list[tuple[tuple[str | int, ...], str]]:
        """What in this block names no member of the team (``members``: name -> tier).

        Checked when the team file loads, so a typo fails at start-up, not mid-request.
        """
        found: list[tuple[tuple[str | int, ...], str]] = []
        tiers = set(members.values())
        allowed = ", ".join(sorted(members))

        def check(loc: tuple[str | int, ...], target: str | None) -> None:
            if target is None:
                return
            if target.startswith("tier:"):
                if target.removeprefix("tier:") not in tiers:
                    found.append((loc, f"no member is in tier '{target.removeprefix('tier:')}'"))
            elif target not in members:
                found.append((loc, f"unknown member '{target}'; members: {allowed}"))

        for index, name in enumerate(self.verifiers):
            if name not in BUILT_IN_VERIFIERS:
                try:
                    plugin_verifier(name)
                except ValueError as exc:
                    found.append((("verifiers", index), str(exc)))
        check(("escalate_to",), self.escalate_to)
        check(("cross_check",), self.cross_check)
        for index, name in enumerate(
            self.self_consistency.members if self.self_consistency else []
        ):
            check(("self_consistency", "members", index), name)
        for unit, override in self.units.items():
            try:
                GuardSpec.model_validate({**self.guards.model_dump(), **override})
            except ValueError as exc:
                found.append((("units", unit), f"invalid guard override: {exc}"))
        return found

    def guards_for(self, unit: str) -> GuardSpec:
        """The unit's guards: the team's, with the unit's overrides on top."""
        override = self.units.get(unit)
        if not override:
            return self.guards
        return GuardSpec.model_validate({**self.guards.model_dump(), **override})


def plugin_verifier(name: str) -> Verifier:
    """An instance of the verifier class ``package.module:Class`` names."""
    if ":" not in name:
        allowed = ", ".join(BUILT_IN_VERIFIERS)
        raise ValueError(f"unknown verifier '{name}'; allowed: {allowed} or 'module:Class'")
    try:
        verifier = import_object(name)()
    except PluginNotFound as exc:
        raise ValueError(f"verifier {exc}") from exc
    except TypeError as exc:
        raise ValueError(f"verifier '{name}' cannot be built without arguments: {exc}") from exc
    if not isinstance(verifier, Verifier):
        raise ValueError(f"verifier '{name}' has no name and check(request, completion, evidence)")
    return verifier


__all__ = [
    "BUILT_IN_VERIFIERS",
    "Escalation",
    "SelfConsistencySpec",
    "VerificationSpec",
    "finding_json",
    "plugin_verifier",
]
