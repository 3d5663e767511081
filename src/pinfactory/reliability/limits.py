"""Rate limits per key, user and unit: requests and tokens per minute, concurrent requests.

A team file lists them::

    rate_limits:
      - {per: unit, name: research, rpm: 60, tpm: 20000, concurrent: 4}
      - {per: key, rpm: 600}          # no name: every key, each counted on its own

Minutes are fixed windows of wall-clock time (``Retry-After`` says when the next one
starts); tokens are the prompt's estimate on admission plus the answer's tokens when it
is done. Counters live in :mod:`pinfactory.reliability.state`, so with Redis every
worker and host shares them; each check is one atomic increment, undone when refused.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pinfactory.errors import RateLimited
from pinfactory.reliability.state import SharedState, StateUnavailable

log = logging.getLogger(__name__)
WINDOW_S = 60.0
INFLIGHT_TTL_S = 600.0  # a slot held by a worker that died is freed after this at the latest


class RateLimitSpec(BaseModel):
    """One limit: who it applies to (``per`` and ``name``) and what it allows."""

    model_config = ConfigDict(extra="forbid")

    per: Literal["key", "user", "unit"]
    name: str | None = Field(
        default=None, description="the one unit/user it binds; none: each one apart"
    )
    rpm: int | None = Field(default=None, gt=0, description="requests per minute")
    tpm: int | None = Field(default=None, gt=0, description="tokens per minute")
    concurrent: int | None = Field(default=None, gt=0, description="requests in flight")

    @model_validator(mode="after")
    def _something(self) -> RateLimitSpec:
        if self.rpm is None and self.tpm is None and self.concurrent is None:
            raise ValueError("a rate limit needs at least one of rpm, tpm, concurrent")
        if self.per == "key" and self.name is not None:
            raise ValueError("'name' binds a unit or a user; a key limit applies to every key")
        return self


@dataclass(frozen=True, slots=True)
class Who:
    """The caller a limit is counted against."""

    key: str  # an opaque id of the API key (a digest prefix), never the key; "" without keys
    user: str  # the request's user, as the ledger records it: the key's, else the body's
    unit: str  # the key's business unit

    def of(self, per: Literal["key", "user", "unit"]) -> str:
        """The caller's key id, user or unit (a limit's ``per`` names the field)."""
        return getattr(self, per)  # type: ignore[no-any-return]


@dataclass(slots=True)
class Admission:
    """What one admitted request holds; :meth:`RateLimiter.done` gives it back."""

    window: int
    tpm_keys: list[str] = field(default_factory=list)
    inflight_keys: list[str] = field(default_factory=list)


class RateLimiter:
    """Checks every limit that applies to a caller. ``admit`` before, ``done`` after."""

    def __init__(
        self,
        specs: list[RateLimitSpec],
        state: SharedState,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.specs = specs
        self.state = state
        self.clock = clock

    @property
    def active(self) -> bool:
        return bool(self.specs)

    async def admit(self, who: Who, tokens: int) -> Admission:
        """Count the request; raise :class:`RateLimited` (undoing its counts) if over a limit.

        Every count the caller's limits take goes to the shared state in one round trip;
        the first limit (in the team file's order) the new counts pass is the refusal.
        """
        now = self.clock()
        window = math.floor(now / WINDOW_S)
        retry_after = (window + 1) * WINDOW_S - now
        admission = Admission(window)
        counts: list[tuple[str, int, float]] = []
        checks: list[tuple[RateLimitSpec, str, str, int]] = []  # spec, subject, what, limit
        for spec in self.specs:
            subject = who.of(spec.per)
            if spec.name is not None and spec.name != subject:
                continue
            base = f"limit:{spec.per}:{subject}"
            if spec.rpm is not None:
                counts.append((f"{base}:rpm:{window}", 1, WINDOW_S * 2))
                checks.append((spec, subject, "rpm", spec.rpm))
            if spec.tpm is not None:
                if tokens > spec.tpm:
                    raise RateLimited(
                        f"the request's {tokens} tokens exceed {spec.per} '{subject}''s "
                        f"limit of {spec.tpm} tokens a minute",
                        retry_after_s=retry_after,
                        should_retry=False,
                    )
                key = f"{base}:tpm:{window}"
                counts.append((key, tokens, WINDOW_S * 2))
                checks.append((spec, subject, "tpm", spec.tpm))
                admission.tpm_keys.append(key)
            if spec.concurrent is not None:
                key = f"{base}:inflight"
                counts.append((key, 1, INFLIGHT_TTL_S))
                checks.append((spec, subject, "concurrent", spec.concurrent))
                admission.inflight_keys.append(key)
        if not counts:
            return admission
        values = await self.state.incr_many(counts)
        for value, (spec, subject, what, limit) in zip(values, checks, strict=True):
            if value > limit:
                await self.state.incr_many([(key, -n, ttl_s) for key, n, ttl_s in counts])
                raise _refusal(spec, subject, what, retry_after)
        return admission

    async def done(self, admission: Admission, output_tokens: int) -> None:
        """Free the concurrency slots; count the answer's tokens in the admission's minute.

        Never raises: a request that was answered stays answered when the shared state
        went away meanwhile (its slot is freed when the key's TTL lapses, at the latest;
        its answer's tokens go uncounted).
        """
        counts = [(key, -1, INFLIGHT_TTL_S) for key in admission.inflight_keys]
        if output_tokens:
            counts += [(key, output_tokens, WINDOW_S * 2) for key in admission.tpm_keys]
        try:
            if counts:
                await self.state.incr_many(counts)
        except StateUnavailable as exc:
            log.warning("rate limit counts not updated after a request: %s", exc.message)


def _refusal(spec: RateLimitSpec, subject: str, what: str, retry_after: float) -> RateLimited:
    """The 429 for ``subject`` past ``spec``'s ``what`` (rpm, tpm or concurrent)."""
    if what == "rpm":
        return RateLimited(
            f"{spec.per} '{subject}' is over {spec.rpm} requests a minute",
            retry_after_s=retry_after,
        )
    if what == "tpm":
        return RateLimited(
            f"{spec.per} '{subject}' is over {spec.tpm} tokens a minute", retry_after_s=retry_after
        )
    return RateLimited(
        f"{spec.per} '{subject}' has {spec.concurrent} requests in flight already",
        retry_after_s=1.0,
    )
