"""What members behind an OpenAI-compatible HTTP endpoint share: their settings for
reaching it and the transport (:class:`~pinfactory.members.upstream.Upstream`: timeouts,
retries, the circuit breaker), opened in ``open`` and closed in ``close``.

``openai_http`` posts to ``{base_url}/chat/completions``, ``openai_embeddings`` to
``{base_url}/embeddings``; each keeps its own translation (pure functions) apart.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from pinfactory.members.base import Member
from pinfactory.members.upstream import Upstream, UpstreamSpec
from pinfactory.reliability.breaker import CircuitBreaker


class RemoteSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(pattern=r"^https?://", description="e.g. http://127.0.0.1:8000/v1")
    api_key: str = ""
    model: str = Field(min_length=1)
    max_connections: int = Field(default=100, gt=0)
    upstream: UpstreamSpec = Field(
        default_factory=UpstreamSpec,
        description="timeouts, retries, breaker, size cap; the team's ``upstream:`` is the default",
    )


class RemoteMember(Member):
    """A member that calls ``{settings.base_url}{path}`` through one :class:`Upstream`."""

    path: ClassVar[str]
    settings: RemoteSettings
    _upstream: Upstream | None = None

    @property
    def upstream(self) -> Upstream:
        """The transport (timeouts, retries, breaker); built on first use, opened in ``open``."""
        if self._upstream is None:
            headers = {}
            if self.settings.api_key:
                headers["authorization"] = f"Bearer {self.settings.api_key}"
            self._upstream = Upstream(
                self.name,
                self.settings.base_url.rstrip("/") + self.path,
                self.settings.upstream,
                timeout_s=self.timeout_s,
                headers=headers,
                max_connections=self.settings.max_connections,
            )
        return self._upstream

    @property
    def breaker(self) -> CircuitBreaker:
        return self.upstream.breaker

    async def open(self) -> None:
        await self.upstream.open()

    async def close(self) -> None:
        if self._upstream is not None:
            await self._upstream.close()
            self._upstream = None
