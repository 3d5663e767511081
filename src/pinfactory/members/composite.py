"""Members made of members: a fallback list, a cascade, a cross-check.

A composite is a :class:`~pinfactory.members.base.Member` like any other (the
way pydantic-ai's ``FallbackModel`` is itself a ``Model``): the pipeline
calls exactly one member and never knows whether it is a composite. The
composite calls its parts through :meth:`Composite.call` /
:meth:`Composite.stream_call`, which book every inner call on the request's
tab (``members.calls``) with its purpose, so the request, its unit, budgets
and quotas see each of them; the composite itself is never booked
(``books_itself``). Parts are named in the team file and bound once every
member exists (:meth:`Composite.bind`); ``tier:NAME`` resolves to the
cheapest member of that tier, by the one resolver routers use.

```yaml
members:
  - {name: steady, kind: fallback, settings: {members: [remote, local]}}
  - {name: checked, kind: cross_check, settings: {members: [local, remote], threshold: 0.6}}
  - {name: climb, kind: cascade, settings: {members: [local, tier:frontier], threshold: 0.5}}
```

To add a composite (retries, load balancing, hedging...), subclass
:class:`Composite` and implement ``complete`` (and ``stream`` if it can start
streaming before it is done) on top of ``call`` / ``stream_call``;
:class:`FallbackMember` shows the shape, and its :meth:`FallbackMember.falls_back`
is the hook deciding which errors move on to the next part.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import MemberError, MemberRejected, PinfactoryError, TeamFileError
from pinfactory.members.base import Capabilities, Completion, Delta, Member, each
from pinfactory.members.calls import MemberStream, Purpose, call_member, current_tab
from pinfactory.members.registry import register
from pinfactory.request import Request
from pinfactory.tiers import resolve_member, table_of
from pinfactory.verify.consistency import compare
from pinfactory.verify.events import Disagreement


class CompositeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(min_length=1, description="member names or tier:<name>, in order")


class Composite(Member):
    """The small base of every member made of members (see the module docstring)."""

    books_itself = True
    Settings = CompositeSettings
    settings: CompositeSettings
    parts: tuple[Member, ...] = ()  # set by bind()

    def bind(self, members: Mapping[str, Member]) -> None:
        """Resolve the parts' names against the team's members; a typo fails here."""
        table = table_of(members.values(), exclude=self.name)
        parts = []
        for target in self.settings.members:
            name = resolve_member(table, target)
            if name is None:
                allowed = ", ".join(sorted(table))
                raise TeamFileError(
                    f"member '{self.name}': '{target}' names no other member; members: {allowed}"
                )
            parts.append(members[name])
        self.parts = tuple(parts)
        if "capabilities" not in vars(self):  # not set by the team file: what every part serves
            self.capabilities = Capabilities.common(p.capabilities for p in self.parts)

    def leaves(self) -> tuple[Member, ...]:
        """The members this one may call in the end (its parts, theirs when composite)."""
        found: list[Member] = []
        for part in self.parts:
            for leaf in part.leaves() if isinstance(part, Composite) else (part,):
                if leaf not in found:
                    found.append(leaf)
        return tuple(found)

    def worst_case_usd(self, request: Request) -> Decimal:
        """What the request can cost at most: every part called (see ``Member``)."""
        return sum((part.worst_case_usd(request) for part in self.parts), Decimal(0))

    async def call(self, member: Member, request: Request, purpose: Purpose) -> Completion:
        """Call one part, booked on the request's tab."""
        return await call_member(member, request, purpose)

    def stream_call(self, member: Member, request: Request, purpose: Purpose) -> MemberStream:
        """Stream one part, booked on the request's tab however it ends."""
        return MemberStream(member, request, purpose)


@register
class FallbackMember(Composite):
    """Try each part in order; the first that answers wins.

    A part that fails with a :class:`MemberError` (an upstream error, a
    timeout) passes the request on. Every attempt is booked.

    A stream that fails after text was relayed goes on with the next part only
    if that part's answer *repeats* what was already sent (a deterministic
    model, such as another deployment of the same one at temperature 0): its
    stream is read without relaying until it has said the same text, and only
    what it says after that is relayed. The client then holds exactly the next
    part's answer, every byte of it said by an upstream; if the next part says
    anything else, or a chunk already sent was more than text (tool calls,
    logprobs, several choices), the first failure is the stream's.
    """

    kind = "fallback"

    def falls_back(self, error: PinfactoryError) -> bool:
        """Whether ``error`` moves the request on to the next part: a member's failure,
        not the caller's (:class:`MemberRejected`), except a prompt too long for the
        member, which a next part with a longer context may take."""
        if isinstance(error, MemberRejected):
            return error.code == "context_length_exceeded"
        return isinstance(error, MemberError)

    async def complete(self, request: Request) -> Completion:
        failures: list[str] = []
        for index, part in enumerate(self.parts):
            try:
                return await self.call(part, request, "answer" if index == 0 else "fallback")
            except PinfactoryError as exc:
                if not self.falls_back(exc) or index == len(self.parts) - 1:
                    raise
                failures.append(exc.message)
        raise MemberError(self.name, "no part to call")  # bind() guarantees one

    async def stream(self, request: Request) -> AsyncIterator[str | Delta | Completion]:
        sent: list[str] | None = []  # the text relayed so far; None once it was more than text
        failure: PinfactoryError | None = None
        for index, part in enumerate(self.parts):
            events = self.stream_call(part, request, "answer" if index == 0 else "fallback")
            resume = _Resume("".join(sent)) if sent else None
            try:
                async for arrived in events:  # a run of chunks: one by one
                    for received in each(arrived):
                        event: str | Delta | Completion | None = received
                        if resume is not None and not isinstance(received, Completion):
                            event = resume.past(received)  # None while it repeats what was sent
                            if event is None:
                                continue
                            resume = None
                        elif resume is not None:  # it ended without saying as much
                            resume.past("")
                        assert event is not None
                        if isinstance(event, Completion):
                            yield event
                            return
                        if sent is not None:
                            text = plain_text(event)
                            sent = None if text is None else [*sent, text]
                        yield event
            except _Diverged:
                events.abandon("fallback_diverged")
                await events.aclose()
                assert failure is not None
                raise failure from None
            except PinfactoryError as exc:
                failure = failure or exc
                last = index == len(self.parts) - 1
                if not self.falls_back(exc) or last or sent is None:
                    raise exc from None
        raise MemberError(self.name, "no part to call")  # bind() guarantees one


class _Diverged(Exception):
    """The next part's answer did not repeat what a broken stream had already sent."""


class _Resume:
    """Reads the next part's stream until it has repeated ``sent``; then relays the rest."""

    def __init__(self, sent: str) -> None:
        self.sent = sent
        self.said = ""

    def past(self, event: str | Delta) -> str | Delta | None:
        """None while ``event`` is within what was sent; the part of it beyond, once it
        goes past (the event itself when it starts exactly there). Raises
        :class:`_Diverged` when it says something else."""
        text = plain_text(event)
        if text is None:
            raise _Diverged
        before, self.said = self.said, self.said + text
        if len(self.said) <= len(self.sent):
            if not self.sent.startswith(self.said) or (event == "" and self.said != self.sent):
                raise _Diverged
            return None
        if not self.said.startswith(self.sent):
            raise _Diverged
        return event if len(before) == len(self.sent) else self.said[len(self.sent) :]


def plain_text(event: str | Delta) -> str | None:
    """The text an event adds, if text is all it carries (one choice: no tool calls,
    refusal or logprobs); else None."""
    if isinstance(event, str):
        return event
    choices = event.chunk.choices
    if len(choices) > 1:
        return None
    if choices:
        choice = choices[0]
        delta = choice.delta
        if delta.tool_calls or delta.refusal or choice.logprobs is not None:
            return None
    return event.text


class CrossCheckSettings(CompositeSettings):
    threshold: float = Field(default=0.6, ge=0, le=1, description="least agreement accepted")


@register
class CrossCheckMember(Composite):
    """Ask the first part and check its answer with every other part.

    Answers with the first part's completion; each part that disagrees with
    it (``verify.consistency.agreement`` below ``threshold``) adds a
    :class:`~pinfactory.outcome.Disagreement` event to the request's tab.
    """

    kind = "cross_check"
    Settings = CrossCheckSettings
    settings: CrossCheckSettings

    async def complete(self, request: Request) -> Completion:
        first, *others = self.parts
        answer = await self.call(first, request, "answer")
        for other in others:
            second = await self.call(other, request, "cross_check")
            _, event = compare(
                first.name, answer.text, other.name, second.text, self.settings.threshold
            )
            if isinstance(event, Disagreement):
                current_tab().events.append(event)
        return answer


class Scorer(Protocol):
    """How far a tier's answer can be trusted: a confidence in [0, 1]."""

    def __call__(self, request: Request, completion: Completion) -> float: ...


def answered(request: Request, completion: Completion) -> float:  # noqa: ARG001
    """The simplest acceptance check: a non-empty answer that does not refuse."""
    return 0.0 if completion.refused or not completion.text.strip() else 1.0


class CascadeSettings(CompositeSettings):
    threshold: float = Field(default=0.5, ge=0, le=1, description="confidence to accept a tier")
    thresholds: list[float] | None = Field(
        default=None, description="one per part but the last; default: threshold for each"
    )


@register
class CascadeMember(Composite):
    """Try the parts cheapest first; escalate while the answer looks weak.

    After each part but the last answers, ``scorer`` (default :func:`answered`:
    non-empty and not a refusal, 1.0 or 0.0) gives a confidence; the answer is
    accepted when it reaches that part's threshold. The last part's answer is
    always accepted. Every part tried is booked (purpose ``tier`` after the
    first) and explained on the request's tab (``trail``, which ends up in the
    decision). A cascade router's tiers are one of these (``routing.cascade``);
    what it may cost at most is every tier it may call.
    """

    kind = "cascade"
    Settings = CascadeSettings
    settings: CascadeSettings
    scorer: Scorer = staticmethod(answered)
    scorer_name = "answered"

    @classmethod
    def of(
        cls,
        name: str,
        parts: Sequence[str],
        scorer: Scorer,
        *,
        scorer_name: str,
        thresholds: Sequence[float],
    ) -> CascadeMember:
        """A cascade over the named parts (bound later), with its own scorer."""
        made = cls(name, CascadeSettings(members=list(parts), thresholds=list(thresholds)))
        made.scorer, made.scorer_name = scorer, scorer_name
        return made

    def limits(self) -> list[float]:
        """The acceptance threshold of every part but the last."""
        if self.settings.thresholds is not None:
            return list(self.settings.thresholds)
        return [self.settings.threshold] * (len(self.parts) - 1)

    def _confidence(self, part: Member, request: Request, completion: Completion) -> float:
        if getattr(self.scorer, "per_member", False):  # e.g. an AcceptanceModel
            scorer: Any = self.scorer
            return float(scorer(request, completion, member=part.name))
        return float(self.scorer(request, completion))

    async def complete(self, request: Request) -> Completion:
        trail = current_tab().trail
        limits = self.limits()
        completion: Completion | None = None
        for index, part in enumerate(self.parts):
            completion = await self.call(part, request, "answer" if index == 0 else "tier")
            if index == len(self.parts) - 1:
                trail.append(f"{part.name}: accepted (last tier)")
                break
            confidence = self._confidence(part, request, completion)
            limit = limits[min(index, len(limits) - 1)]
            verdict = f"{self.scorer_name} {confidence:.2f}"
            if confidence >= limit:
                trail.append(f"{part.name}: accepted ({verdict} >= {limit:.2f})")
                break
            trail.append(f"{part.name}: escalated ({verdict} < {limit:.2f})")
        assert completion is not None  # bind() guarantees a part
        return completion


__all__ = [
    "CascadeMember",
    "Composite",
    "CompositeSettings",
    "CrossCheckMember",
    "FallbackMember",
    "Scorer",
    "answered",
]
