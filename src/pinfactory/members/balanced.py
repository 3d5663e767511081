"""A member that spreads requests over several deployments of one model.

    members:
      - {name: gpt-east, kind: openai_http, settings: {base_url: http://east/v1, model: gpt}}
      - {name: gpt-west, kind: openai_http, settings: {base_url: http://west/v1, model: gpt}}
      - name: gpt
        kind: balanced
        settings:
          members: [gpt-east, gpt-west]
          strategy: least_busy        # weighted | least_busy | lowest_latency | ordered
          weights: {gpt-east: 2}      # weighted only; 1 when not given

A :class:`~pinfactory.members.composite.Composite`: each deployment is a member of the
team (with its own upstream transport and circuit breaker), and every attempt is booked
on the request's tab (``answer`` for the first, ``fallback`` for the next). A request
goes to the deployment the strategy picks among those whose breaker is not open; if it
fails before its first token (a :class:`MemberError`), the next one is tried, and so on.
A stream never switches deployment once a token has gone out.

- weighted: at random, in proportion to ``weights``;
- least_busy: the fewest requests in flight (ties: by weight, at random); with the team's
  ``state: {redis_url}`` the counts are kept in Redis, so every worker and host sees the
  requests the others have in flight (one MGET per request, one INCR on each side of a
  call); without it, the counts of this worker;
- lowest_latency: the lowest moving average of recent latencies (untried ones first);
- ordered: as listed, the first the primary and the others its fallbacks in turn (the
  ``fallback`` kind does the same for members of different models).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, Literal

from pydantic import Field

from pinfactory.errors import MemberError, MemberRejected, TeamFileError
from pinfactory.members.base import Completion, Member, StreamEvent
from pinfactory.members.composite import Composite, CompositeSettings
from pinfactory.members.registry import register
from pinfactory.reliability.breaker import BreakerState
from pinfactory.reliability.limits import INFLIGHT_TTL_S
from pinfactory.reliability.state import SharedState, StateUnavailable, open_state
from pinfactory.request import Request

LATENCY_DECAY = 0.2  # weight of the newest latency in the moving average


class BalancedSettings(CompositeSettings):
    strategy: Literal["weighted", "least_busy", "lowest_latency", "ordered"] = "weighted"
    weights: dict[str, float] = Field(
        default={}, description="member name -> weight (weighted and least_busy ties); 1 else"
    )
    state_url: str | None = Field(
        default=None,
        description="redis://... where least_busy counts requests in flight for every "
        "worker; the team loader sets the team's state: redis_url",
    )
    state_namespace: str = Field(default="pf", description="key prefix; set to pf:<team name>")


@register
class BalancedMember(Composite):
    """Deployments of one model behind one member name."""

    kind = "balanced"
    Settings = BalancedSettings
    settings: BalancedSettings

    def __init__(self, name: str, settings: Any = None, **options: Any) -> None:
        super().__init__(name, settings, **options)
        self.inflight: dict[str, int] = {}  # this worker's
        self.latency_ms: dict[str, float] = {}
        self._random = random.Random()
        self.shared: SharedState | None = None  # in-flight counts of every worker
        if self.settings.strategy == "least_busy" and self.settings.state_url:
            self.shared = open_state(
                self.settings.state_url, namespace=self.settings.state_namespace
            )

    async def open(self) -> None:
        await super().open()
        if self.shared is not None:
            await self.shared.open()

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
        await super().close()

    def bind(self, members: Mapping[str, Member]) -> None:
        super().bind(members)
        names = {part.name for part in self.parts}
        unknown = sorted(set(self.settings.weights) - names)
        if unknown:
            raise TeamFileError(
                f"member '{self.name}': weights name {', '.join(unknown)}, not one of its "
                f"members ({', '.join(sorted(names))})"
            )
        if any(weight <= 0 for weight in self.settings.weights.values()):
            raise TeamFileError(f"member '{self.name}': weights must be above 0")
        self.inflight = dict.fromkeys(names, 0)

    def weight(self, part: Member) -> float:
        return self.settings.weights.get(part.name, 1.0)

    def _inflight_key(self, part: Member) -> str:
        return f"inflight:{self.name}:{part.name}"

    async def busy(self) -> dict[str, int]:
        """Requests in flight per deployment: of every worker with shared state, else here.

        Raises :class:`~pinfactory.reliability.state.StateUnavailable` when Redis is down.
        """
        if self.shared is None:
            return dict(self.inflight)
        values = await self.shared.get_many([self._inflight_key(p) for p in self.parts])
        return {p.name: int(v or 0) for p, v in zip(self.parts, values, strict=True)}

    async def order(self) -> list[Member]:
        """The deployments in the order to try them: the strategy's pick first, then the
        others by the same measure; those with an open breaker last."""
        parts = list(self.parts)
        strategy = self.settings.strategy
        if strategy == "weighted":
            keys = {p.name: self._random.random() ** (1.0 / self.weight(p)) for p in parts}
            parts.sort(key=lambda p: -keys[p.name])  # drawn by weight without replacement
        elif strategy == "least_busy":
            busy = await self.busy()
            self._random.shuffle(parts)
            parts.sort(key=lambda p: (busy.get(p.name, 0), -self.weight(p)))
        elif strategy == "lowest_latency":
            self._random.shuffle(parts)
            parts.sort(key=lambda p: self.latency_ms.get(p.name, 0.0))
        return sorted(parts, key=_open_last)

    async def complete(self, request: Request) -> Completion:
        failures: list[MemberError] = []
        for index, part in enumerate(await self.order()):
            async with self._measure(part):
                try:
                    return await self.call(part, request, "answer" if index == 0 else "fallback")
                except MemberRejected:  # the caller's fault: every deployment would refuse
                    raise
                except MemberError as exc:
                    failures.append(exc)
        raise self._all_failed(failures)

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        failures: list[MemberError] = []
        for index, part in enumerate(await self.order()):
            async with self._measure(part):
                events = self.stream_call(part, request, "answer" if index == 0 else "fallback")
                try:
                    first = await anext(events)
                except MemberRejected:
                    raise
                except MemberError as exc:
                    failures.append(exc)
                    continue
                yield first  # from here on this deployment answers, or the stream fails
                async for event in events:
                    yield event
                return
        raise self._all_failed(failures)

    @asynccontextmanager
    async def _measure(self, part: Member) -> AsyncIterator[None]:
        """Count the call in flight (here, and in the shared state) and time it."""
        if self.shared is not None:
            await self.shared.incr(self._inflight_key(part), 1, INFLIGHT_TTL_S)
        self.inflight[part.name] = self.inflight.get(part.name, 0) + 1
        started = time.perf_counter()
        try:
            yield
        finally:
            self.inflight[part.name] -= 1
            if self.shared is not None:
                with suppress(StateUnavailable):  # the key's TTL frees the count at the latest
                    await self.shared.incr(self._inflight_key(part), -1, INFLIGHT_TTL_S)
            elapsed = (time.perf_counter() - started) * 1000.0
            previous = self.latency_ms.get(part.name)
            self.latency_ms[part.name] = (
                elapsed if previous is None
                else (1 - LATENCY_DECAY) * previous + LATENCY_DECAY * elapsed
            )  # fmt: skip

    def _all_failed(self, failures: list[MemberError]) -> MemberError:
        if not failures:
            return MemberError(self.name, "no deployment answered")
        reasons = "; ".join(f.message for f in failures)
        return MemberError(
            self.name,
            f"all {len(failures)} deployments failed: {reasons}",
            status=failures[-1].status,
            retry_after_s=min((f.retry_after_s for f in failures if f.retry_after_s), default=None),
        )

    def status(self) -> Mapping[str, Any]:
        """Per deployment: weight, requests in flight from this worker, moving-average
        latency (ms)."""
        return {
            p.name: {
                "weight": self.weight(p),
                "inflight": self.inflight.get(p.name, 0),
                "latency_ms": self.latency_ms.get(p.name),
            }
            for p in self.parts
        }


def _open_last(part: Member) -> bool:
    breaker = getattr(part, "breaker", None)
    return breaker is not None and breaker.last_seen is BreakerState.OPEN
