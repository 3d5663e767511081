"""The ``observe:`` section of a team file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TracingSpec(BaseModel):
    """Where spans go. ``capture_content`` puts prompts and answers on spans (off by default)."""

    model_config = ConfigDict(extra="forbid")

    exporter: Literal["otlp", "console", "none"] = "none"
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces",
    )
    capture_content: bool = False
    service_name: str = Field(default="pinfactory", min_length=1)

    @model_validator(mode="after")
    def _endpoint_for_otlp(self) -> TracingSpec:
        if self.endpoint is not None and self.exporter != "otlp":
            raise ValueError("'endpoint' applies only to exporter: otlp")
        return self


class MetricsSpec(BaseModel):
    """``/metrics``: open when the team has no keys, else admin key or this token."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    token: str | None = Field(default=None, min_length=16)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_token(self) -> MetricsSpec:
        if self.token is not None and self.token_sha256 is not None:
            raise ValueError("give at most one of 'token' or 'token_sha256'")
        return self


class ObserveSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracing: TracingSpec = TracingSpec()
    metrics: MetricsSpec = MetricsSpec()
    access_log: bool | None = Field(
        default=None,
        description="one JSON line per request on the pinfactory.access logger; unset: on "
        "when that logger is enabled for INFO as the gateway starts (pinfactory serve does)",
    )
