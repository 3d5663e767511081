"""Counters and flags shared by every gateway worker: in this process, or in Redis.

Rate-limit windows, in-flight counts and circuit-breaker state live here. With one
worker, :class:`MemoryState` keeps them in a dict; with ``serve --workers N`` or
several hosts, :class:`RedisState` keeps them in one Redis, where each operation is
a single atomic command, so a count is never lost or doubled between workers.

Keys expire (``ttl_s``): a worker killed while it held a concurrency slot frees it
when the key lapses, at the latest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import PinfactoryError


class StateSpec(BaseModel):
    """Where workers share rate-limit windows, in-flight counts and breaker state."""

    model_config = ConfigDict(extra="forbid")

    redis_url: str | None = Field(
        default=None,
        pattern=r"^rediss?://",
        description="redis://host:port/db; none keeps the state in each worker process",
    )


class StateUnavailable(PinfactoryError):
    """The shared state (Redis) cannot be reached: requests are refused, not let through.

    503 ``state_unavailable`` with ``Retry-After: 1`` and ``x-should-retry: true``: the
    refusal lasts as long as Redis is away (``/health/ready`` says so meanwhile).
    """

    status = 503
    code = "state_unavailable"
    retry_after_s = 1.0
    should_retry = True


class SharedState(Protocol):
    """Atomic counters and flags. Every method is one round trip at most."""

    async def incr(self, key: str, amount: int, ttl_s: float) -> int:
        """Add ``amount`` (may be negative) to ``key``; the new value. Sets ``ttl_s``."""
        ...

    async def incr_many(self, counts: list[tuple[str, int, float]]) -> list[int]:
        """:meth:`incr` of each ``(key, amount, ttl_s)``, in order, in one round trip
        (atomic each, not as a group); the new values."""
        ...

    async def get(self, key: str) -> str | None: ...

    async def get_many(self, keys: list[str]) -> list[str | None]:
        """The values of ``keys``, in order (None where absent), in one round trip."""
        ...

    async def set(self, key: str, value: str, ttl_s: float, *, only_new: bool = False) -> bool:
        """Store ``value`` for ``ttl_s``; with ``only_new``, only if ``key`` is absent.

        True when stored.
        """
        ...

    async def delete(self, *keys: str) -> None: ...

    async def open(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`StateUnavailable` when the store cannot be reached."""
        ...

    async def close(self) -> None: ...


class MemoryState:
    """The state of one process. Expired keys are dropped when read. A counter is kept as
    an ``int`` (read back as its decimal string, as Redis gives it)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._values: dict[str, tuple[str | int, float]] = {}
        self._clock = clock or time.monotonic

    def _live(self, key: str) -> str | None:
        found = self._values.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._values[key]
            return None
        return str(found[0])

    async def incr(self, key: str, amount: int, ttl_s: float) -> int:
        now = self._clock()
        found = self._values.get(key)
        value = amount if found is None or found[1] <= now else int(found[0]) + amount
        self._values[key] = (value, now + ttl_s)
        return value

    async def incr_many(self, counts: list[tuple[str, int, float]]) -> list[int]:
        now, values, new = self._clock(), self._values, []
        for key, amount, ttl_s in counts:
            found = values.get(key)
            value = amount if found is None or found[1] <= now else int(found[0]) + amount
            values[key] = (value, now + ttl_s)
            new.append(value)
        return new

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        return [self._live(key) for key in keys]

    async def set(self, key: str, value: str, ttl_s: float, *, only_new: bool = False) -> bool:
        if only_new and self._live(key) is not None:
            return False
        self._values[key] = (value, self._clock() + ttl_s)
        return True

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._values.pop(key, None)

    async def open(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._values.clear()


class RedisState:
    """The state in one Redis, shared by every worker and host that names the same URL.

    Each operation is one atomic command (or one MULTI transaction); a Redis that
    cannot be reached within ``timeout_s`` raises :class:`StateUnavailable`.
    """

    def __init__(self, url: str, *, namespace: str = "pf", timeout_s: float = 1.0) -> None:
        self.url = url
        self.namespace = namespace
        self.timeout_s = timeout_s
        self._client: Any = None

    async def open(self) -> None:
        import redis.asyncio as aioredis  # imported here: only teams that use Redis need it
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                decode_responses=True,
                # a pooled connection to a Redis that restarted fails once ("closed by
                # server") before the pool reconnects: retry that once, on a new connection
                retry=Retry(NoBackoff(), 1),
                retry_on_error=[RedisConnectionError],
            )

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StateUnavailable(f"shared state {self.url} is not open")
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def incr(self, key: str, amount: int, ttl_s: float) -> int:
        async with _mapped(self.url), self.client.pipeline(transaction=True) as tx:
            tx.incrby(self._key(key), amount)
            tx.pexpire(self._key(key), max(1, int(ttl_s * 1000)))
            value, _ = await tx.execute()
        return int(value)

    async def incr_many(self, counts: list[tuple[str, int, float]]) -> list[int]:
        if not counts:
            return []
        async with _mapped(self.url), self.client.pipeline(transaction=False) as batch:
            for key, amount, ttl_s in counts:
                batch.incrby(self._key(key), amount)
                batch.pexpire(self._key(key), max(1, int(ttl_s * 1000)))
            replies = await batch.execute()
        return [int(value) for value in replies[::2]]

    async def get(self, key: str) -> str | None:
        async with _mapped(self.url):
            value = await self.client.get(self._key(key))
        return None if value is None else str(value)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        async with _mapped(self.url):
            values = await self.client.mget([self._key(k) for k in keys])
        return [None if v is None else str(v) for v in values]

    async def set(self, key: str, value: str, ttl_s: float, *, only_new: bool = False) -> bool:
        async with _mapped(self.url):
            stored = await self.client.set(
                self._key(key), value, px=max(1, int(ttl_s * 1000)), nx=only_new
            )
        return bool(stored)

    async def delete(self, *keys: str) -> None:
        if keys:
            async with _mapped(self.url):
                await self.client.delete(*(self._key(k) for k in keys))

    async def ping(self) -> None:
        async with _mapped(self.url):
            await self.client.ping()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class _mapped:
    """Redis's errors (and a stalled Redis) become :class:`StateUnavailable`."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        # redis loads only for teams that use it (see RedisState.open)
        from redis.exceptions import RedisError

        if exc is not None and isinstance(exc, RedisError | OSError | TimeoutError):
            raise StateUnavailable(f"shared state {self.url}: {type(exc).__name__}: {exc}") from exc
        return False


def open_state(url: str | None, *, namespace: str = "pf") -> MemoryState | RedisState:
    """A :class:`RedisState` for ``redis://...`` URLs, else a :class:`MemoryState`."""
    if url:
        return RedisState(url, namespace=namespace)
    return MemoryState()
