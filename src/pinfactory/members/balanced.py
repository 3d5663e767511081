"""A member that spreads requests over several deployments of one model.

    - name: gpt
      kind: balanced
      settings:
        strategy: least_busy          # weighted | least_busy | lowest_latency | ordered
        deployments:
          - {name: gpt-east, settings: {base_url: http://east/v1, model: gpt}, weight: 2}
          - {name: gpt-west, settings: {base_url: http://west/v1, model: gpt}}

Each deployment is a member of its own (``kind`` defaults to ``openai_http``) with its own
upstream transport and circuit breaker; it inherits the balanced member's price, timeout
and the team's ``upstream:`` defaults. A request goes to the deployment the strategy
picks among those whose breaker is not open; if that one fails before its first token,
the next one is tried, and so on (a stream is never switched once a token has gone out).

- weighted: at random, in proportion to ``weight``;
- least_busy: the fewest requests in flight from this worker (ties: by weight, at random);
- lowest_latency: the lowest moving average of recent latencies (untried ones first);
- ordered: as listed: the first is the primary, the others its fallbacks in turn.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing, contextmanager
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pinfactory.errors import MemberError
from pinfactory.members.base import Completion, Member
from pinfactory.members.registry import member_class, register
from pinfactory.reliability.breaker import BreakerState
from pinfactory.request import Request

LATENCY_DECAY = 0.2  # weight of the newest latency in the moving average


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: str = "openai_http"
    settings: dict[str, Any] = {}
    weight: float = Field(default=1.0, gt=0)


class BalancedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal["weighted", "least_busy", "lowest_latency", "ordered"] = "weighted"
    deployments: list[Deployment] = Field(min_length=1)
    upstream: dict[str, Any] = Field(
        default={}, description="upstream defaults for every deployment (the team's, merged)"
    )

    @field_validator("deployments")
    @classmethod
    def _unique(cls, deployments: list[Deployment]) -> list[Deployment]:
        names = [d.name for d in deployments]
        if len(set(names)) != len(names):
            raise ValueError(f"deployment names must be unique; got {', '.join(names)}")
        return deployments


@register
class BalancedMember(Member):
    """Deployments of one model behind one member name."""

    kind = "balanced"
    Settings = BalancedSettings
    settings: BalancedSettings

    def __init__(self, name: str, settings: Any = None, **options: Any) -> None:
        super().__init__(name, settings, **options)
        self.parts: list[Member] = []
        self.weights: dict[str, float] = {}
        self.inflight: dict[str, int] = {}
        self.latency_ms: dict[str, float] = {}
        self._random = random.Random()
        for deployment in self.settings.deployments:
            cls = member_class(deployment.kind)
            own = dict(deployment.settings)
            if "upstream" in cls.Settings.model_fields:
                own["upstream"] = {**self.settings.upstream, **(own.get("upstream") or {})}
            part = cls(
                deployment.name,
                cls.Settings.model_validate(own),
                price=self.price,
                tier=self.tier,
                tags=self.tags,
                timeout_s=self.timeout_s,
                max_output_tokens=self.max_output_tokens,
            )
            self.parts.append(part)
            self.weights[part.name] = deployment.weight
            self.inflight[part.name] = 0

    async def open(self) -> None:
        for part in self.parts:
            await part.open()

    async def close(self) -> None:
        for part in self.parts:
            await part.close()

    def order(self) -> list[Member]:
        """The deployments in the order to try them: the strategy's pick first, then the
        others by the same measure; those with an open breaker last."""
        parts = list(self.parts)
        strategy = self.settings.strategy
        if strategy == "weighted":
            parts = self._weighted_shuffle(parts)
        elif strategy == "ordered":
            pass
        elif strategy == "least_busy":
            self._random.shuffle(parts)
            parts.sort(key=lambda p: (self.inflight[p.name], -self.weights[p.name]))
        else:
            self._random.shuffle(parts)
            parts.sort(key=lambda p: self.latency_ms.get(p.name, 0.0))
        return sorted(parts, key=_open_last)

    async def complete(self, request: Request) -> Completion:
        failures: list[MemberError] = []
        for part in self.order():
            with self._measure(part):
                try:
                    return await part.complete(request)
                except MemberError as exc:
                    failures.append(exc)
        raise self._all_failed(failures)

    async def stream(self, request: Request) -> AsyncIterator[str | Completion]:
        failures: list[MemberError] = []
        for part in self.order():
            with self._measure(part):
                stream = cast(AsyncGenerator[str | Completion, None], part.stream(request))
                async with aclosing(stream) as events:
                    try:
                        first = await anext(events)
                    except StopAsyncIteration:
                        continue
                    except MemberError as exc:
                        failures.append(exc)
                        continue
                    yield first  # from here on this deployment answers, or the stream fails
                    async for event in events:
                        yield event
                    return
        raise self._all_failed(failures)

    def _weighted_shuffle(self, parts: list[Member]) -> list[Member]:
        """An order drawn by weight without replacement (Efraimidis-Spirakis keys)."""
        keys = {p.name: self._random.random() ** (1.0 / self.weights[p.name]) for p in parts}
        return sorted(parts, key=lambda p: -keys[p.name])

    @contextmanager
    def _measure(self, part: Member) -> Iterator[None]:
        self.inflight[part.name] += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            self.inflight[part.name] -= 1
            elapsed = (time.perf_counter() - started) * 1000.0
            previous = self.latency_ms.get(part.name)
            self.latency_ms[part.name] = (
                elapsed if previous is None
                else (1 - LATENCY_DECAY) * previous + LATENCY_DECAY * elapsed
            )  # fmt: skip

    def _all_failed(self, failures: list[MemberError]) -> MemberError:
        if not failures:
            return MemberError(self.name, "no deployment answered")
        last = failures[-1]
        reasons = "; ".join(f.message for f in failures)
        return MemberError(
            self.name,
            f"all {len(failures)} deployments failed: {reasons}",
            status=last.status,
            retry_after_s=min((f.retry_after_s for f in failures if f.retry_after_s), default=None),
        )

    def status(self) -> Mapping[str, Any]:
        """Per deployment: weight, requests in flight here, moving-average latency (ms)."""
        return {
            p.name: {
                "weight": self.weights[p.name],
                "inflight": self.inflight[p.name],
                "latency_ms": self.latency_ms.get(p.name),
            }
            for p in self.parts
        }


def _open_last(part: Member) -> bool:
    breaker = getattr(part, "breaker", None)
    return breaker is not None and breaker.last_seen is BreakerState.OPEN
