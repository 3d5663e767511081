"""A scripted member: deterministic answers for logic tests, no model, no network.

Like pydantic-ai's ``FunctionModel``: the answer is a function of the request
(or the next of a list of replies), priced and counted like any member, and it
can fail on purpose (``fail_times``) to exercise retry and drop policies.

In a team file::

    - name: echo
      kind: pinfactory.testing.scripted:ScriptedMember
      settings: {replies: ["4", "5"], fail_times: 1}

or in code, ``ScriptedMember.of("guesser", lambda request: "17")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import MemberError
from pinfactory.members.base import Completion, Member, Price
from pinfactory.plugins import import_object
from pinfactory.request import Request

Respond = Callable[[Request], str]


class ScriptedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replies: list[str] = Field(default=[], description="answers in turn, cycling")
    respond: str | None = Field(
        default=None, description="'module:function' taking the Request, returning the answer"
    )
    fail_times: int = Field(default=0, ge=0, description="the first N calls fail (status 502)")
    fail_always: bool = False


class ScriptedMember(Member):
    """Answers from ``respond(request)``, else the next reply, else echoes the request."""

    kind = "scripted"
    Settings = ScriptedSettings
    settings: ScriptedSettings

    def __init__(self, name: str, settings: Any = None, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.calls = 0
        self._respond: Respond | None = None
        if self.settings.respond:
            self._respond = import_object(self.settings.respond)

    @classmethod
    def of(
        cls, name: str, respond: Respond, *, price: Price | None = None, fail_times: int = 0
    ) -> ScriptedMember:
        """A scripted member answering with ``respond(request)``."""
        member = cls(name, ScriptedSettings(fail_times=fail_times), price=price)
        member._respond = respond
        return member

    async def complete(self, request: Request) -> Completion:
        self.calls += 1
        if self.settings.fail_always or self.calls <= self.settings.fail_times:
            raise MemberError(self.name, f"scripted failure (call {self.calls})")
        if self._respond is not None:
            text = self._respond(request)
        elif self.settings.replies:
            text = self.settings.replies[(self.calls - 1) % len(self.settings.replies)]
        else:
            text = request.text
        return self.local_completion(request, text, model=f"scripted:{self.name}")
