"""The team file: schema, loading and precise errors.

A team file is YAML. It declares the members, the routing policy, the API
keys (key -> business unit) and where the ledger lives. Every mistake is
reported when the file loads, with the file, the line, the field and what
is allowed; nothing fails later, halfway through a request.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pinfactory.cache import CacheSpec
from pinfactory.errors import TeamFileError
from pinfactory.members import member_class
from pinfactory.members.base import Capabilities, Price
from pinfactory.members.upstream import UpstreamSpec
from pinfactory.observe.config import ObserveSpec
from pinfactory.reliability.limits import RateLimitSpec
from pinfactory.reliability.state import StateSpec
from pinfactory.request import Request
from pinfactory.routing import build_router
from pinfactory.tiers import RouterContext, names_unknown_member, table_of
from pinfactory.verify.policy import VerificationSpec

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
DEFAULT_LEDGER = "pinfactory-ledger.db"
_ENV_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    tier: str = "default"
    price: Price = Price()
    tags: list[str] = []
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_output_tokens: int | None = Field(
        default=None,
        gt=0,
        description="output cap sent upstream as max_tokens; spend limits "
        "reserve a call's cost at this cap (default: the request's max_tokens, else 4096)",
    )
    requires_env: list[str] = Field(
        default=[], description="the member is enabled only when all these variables are set"
    )
    settings: dict[str, Any] = {}
    capabilities: dict[str, Any] = Field(
        default={},
        description="override the kind's capabilities (tools, json_mode, json_schema, vision, "
        "n, logprobs, streaming, max_context), e.g. {vision: false}",
    )

    def enabled(self, environ: Mapping[str, str]) -> bool:
        return all(environ.get(name) for name in self.requires_env)

    def member_capabilities(self, defaults: Capabilities) -> Capabilities:
        """The kind's capabilities with this member's overrides (raises ValidationError)."""
        if not self.capabilities:
            return defaults
        return Capabilities.model_validate({**defaults.model_dump(), **self.capabilities})


class KeySpec(_Strict):
    """An API key and who holds it. Give ``key_sha256`` to keep keys out of the file."""

    key: str | None = Field(default=None, min_length=8)
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    unit: str = Field(pattern=NAME_PATTERN)
    user: str = ""
    admin: bool = False
    reviewer: bool = Field(
        default=False, description="may work the review queue in the web console (/ui)"
    )
    revoked: bool = Field(default=False, description="refuse this key (kept to say why)")

    @model_validator(mode="after")
    def _one_key(self) -> KeySpec:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of 'key' or 'key_sha256'")
        return self

    @property
    def digest(self) -> str:
        return self.key_sha256 or hash_key(self.key or "")


class LedgerSpec(_Strict):
    path: str | None = Field(default=None, description="SQLite file; default pinfactory-ledger.db")
    dsn: str | None = Field(default=None, description="PostgreSQL DSN; overrides path")
    durability: Literal["full", "group", "journal"] = Field(
        default="full",
        description="full: one commit per request. group: requests that arrive while a "
        "commit syncs share the next one; each is still answered only after its own row "
        "and audit entries are committed (docs/observe.md). journal: each request is "
        "answered once its row is in this process's journal file (survives the process "
        "being killed, not a power loss) and committed in groups just after "
        "(ledger/journal.py)",
    )
    journal_dir: str | None = Field(
        default=None,
        description="where durability: journal keeps its journal files; default beside "
        "the SQLite file (<path>-pending), or ./pinfactory-ledger-pending for PostgreSQL",
    )


Period = Literal["hour", "day", "month"]
Policy = Literal["refuse", "downgrade", "queue"]


class BudgetSpec(_Strict):
    """A unit's spend limit per calendar day or month (UTC)."""

    unit: str = Field(pattern=NAME_PATTERN)
    period: Literal["day", "month"] = "month"
    max_spend_usd: Decimal = Field(ge=0)
    on_exhausted: Literal["refuse", "downgrade", "queue"] = "refuse"


class SpendLimit(BaseModel):
    """A limit on calls and/or spend over a window (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    unit: str = Field(default="*", description="a unit's name, or '*' for each unit apart")
    user: str | None = Field(default=None, description="only this user's requests")
    member: str | None = Field(default=None, description="only calls of this member")
    tier: str | None = Field(default=None, description="only calls of this tier's members")
    period: Period = "day"
    max_calls: int | None = Field(default=None, ge=0)
    max_spend_usd: Decimal | None = Field(default=None, ge=0)
    on_exhausted: Policy = "refuse"
    downgrade_to: str | None = Field(default=None, description="member or tier:<name>")
    source: Literal["limit", "quota", "budget"] = Field(
        default="limit", description="how the team file declared it (names its counter)"
    )

    @model_validator(mode="after")
    def _complete(self) -> SpendLimit:
        if self.member is not None and self.tier is not None:
            raise ValueError("give at most one of 'member' or 'tier'")
        if self.max_calls is None and self.max_spend_usd is None:
            raise ValueError("give max_calls, max_spend_usd or both")
        return self

    def covers_request(self, request: Request) -> bool:
        return self.unit in ("*", request.unit) and self.user in (None, request.user)

    def covers_member(self, member: str, tier: str | None) -> bool:
        if self.member is not None:
            return member == self.member
        return self.tier is None or tier == self.tier

    def key(self, unit: str) -> str:
        """The counter this limit uses for ``unit``."""
        if self.source == "budget":
            return f"budget:{self.unit}:{self.period}"
        return f"quota:{self.name}:{unit}"

    def describe(self) -> str:
        if self.source == "budget":
            return f"budget '{self.name}'"
        limits = []
        if self.max_calls is not None:
            limits.append(f"{self.max_calls} calls")
        if self.max_spend_usd is not None:
            limits.append(f"${self.max_spend_usd}")
        if self.member or self.tier:
            target = f"member '{self.member}'" if self.member else f"tier '{self.tier}'"
        else:
            target = "every member"
        kind = "quota" if self.source == "quota" else "limit"
        return f"{kind} '{self.name}' ({' / '.join(limits)} a {self.period} on {target})"


def limits_of(
    limits: Sequence[SpendLimit],
    budgets: Sequence[object] = (),
    quotas: Sequence[object] = (),
) -> list[SpendLimit]:
    """Every limit a team file declares: ``limits``, then the older ``routing.quotas``
    and ``budgets`` forms read as limits (validated here; errors name the field)."""
    found = list(limits)
    for quota in quotas:
        data = quota.model_dump() if isinstance(quota, BaseModel) else dict(quota)  # type: ignore[call-overload]
        found.append(SpendLimit.model_validate({**data, "source": "quota"}))
    for budget in budgets:
        data = budget.model_dump() if isinstance(budget, BaseModel) else dict(budget)  # type: ignore[call-overload]
        name = f"{data['unit']}/{data.get('period', 'month')}"
        found.append(SpendLimit.model_validate({**data, "name": name, "source": "budget"}))
    return found


class ReviewSpec(_Strict):
    """How a client meets an escalation to the human review queue."""

    mode: Literal["wait", "poll"] = "poll"
    timeout_s: float = Field(default=30.0, ge=0, le=3600)


class GatewaySpec(_Strict):
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_messages: int = Field(default=256, gt=0)
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="a connection must send a whole request head this soon"
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="the whole request body must arrive this soon (408)"
    )
    keep_alive_s: float = Field(default=5.0, gt=0, description="idle keep-alive connections")


class RoutingSpec(BaseModel):
    """Routing policy; ``kind`` picks the router, the other fields are its own."""

    model_config = ConfigDict(extra="allow")

    kind: str = "rules"
    fallback: str = Field(pattern=NAME_PATTERN)


class TeamSpec(_Strict):
    name: str = "team"
    members: list[MemberSpec] = Field(min_length=1)
    routing: RoutingSpec
    keys: list[KeySpec] = []
    ledger: LedgerSpec = LedgerSpec()
    gateway: GatewaySpec = GatewaySpec()
    verification: VerificationSpec | None = None  # off unless the team file turns it on
    cache: CacheSpec | None = None  # response caching (cache.py); off unless turned on
    budgets: list[BudgetSpec] = []
    limits: list[SpendLimit] = Field(
        default=[], description="spend limits: calls and/or USD per window (see spend.py)"
    )
    reviews: ReviewSpec = ReviewSpec()
    observe: ObserveSpec = ObserveSpec()
    upstream: UpstreamSpec = Field(
        default_factory=UpstreamSpec,
        description="defaults for every member that calls an upstream over HTTP",
    )
    state: StateSpec = StateSpec()
    rate_limits: list[RateLimitSpec] = []
    drop_unsupported: list[Literal["tools", "response_format", "n", "logprobs", "images"]] = Field(
        default=[],
        description="parameters removed (and the removal recorded) for a member that lacks "
        "them, instead of refusing the request with a 400",
    )

    @field_validator("members")
    @classmethod
    def _unique_names(cls, members: list[MemberSpec]) -> list[MemberSpec]:
        seen: set[str] = set()
        for spec in members:
            if spec.name in seen:
                raise ValueError(f"member name '{spec.name}' is used twice")
            seen.add(spec.name)
        return members

    @model_validator(mode="after")
    def _budget_units(self) -> TeamSpec:
        units = {k.unit for k in self.keys} or {"default"}
        for budget in self.budgets:
            if budget.unit not in units:
                raise ValueError(
                    f"budget for unknown unit '{budget.unit}'; units with keys: "
                    + ", ".join(sorted(units))
                )
        return self


class Team:
    """A loaded, validated team: the spec plus what the environment enables."""

    def __init__(self, spec: TeamSpec, source: str, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.source = source
        self.members = [m for m in spec.members if m.enabled(environ)]
        self.disabled = [m.name for m in spec.members if not m.enabled(environ)]
        self.ledger_location = (
            spec.ledger.dsn
            or spec.ledger.path
            or environ.get("PINFACTORY_LEDGER")
            or DEFAULT_LEDGER
        )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]

    def router_context(self) -> RouterContext:
        """What a router may know of this team (``tiers.RouterContext``): the enabled
        members' table, the fallback, the team file's folder and the declared names."""
        return RouterContext(
            members=table_of(self.members),
            fallback=self.spec.routing.fallback,
            base=Path(self.source).parent,
            declared=frozenset(m.name for m in self.spec.members),
        )

    def limits(self) -> list[SpendLimit]:
        """Every spend limit: ``limits``, then ``routing.quotas`` and ``budgets`` (the older
        forms) read as limits. Raises TeamFileError naming the field or unknown member."""
        found = list(self.spec.limits)
        raw = getattr(self.spec.routing, "quotas", None) or []
        if not isinstance(raw, list):
            raise TeamFileError("routing.quotas: a list of quota policies")
        for index, item in enumerate(raw):
            try:
                found.append(SpendLimit.model_validate({**dict(item), "source": "quota"}))
            except (ValueError, TypeError) as exc:
                raise TeamFileError(f"routing.quotas.{index}: {exc}") from exc
        for budget in self.spec.budgets:
            found.append(
                SpendLimit(
                    name=f"{budget.unit}/{budget.period}",
                    unit=budget.unit,
                    period=budget.period,
                    max_spend_usd=budget.max_spend_usd,
                    on_exhausted=budget.on_exhausted,
                    source="budget",
                )
            )
        declared = {m.name for m in self.spec.members}
        for limit in found:
            for name in (limit.member, limit.downgrade_to):
                if name and names_unknown_member(name, declared):
                    raise TeamFileError(f"{limit.source} '{limit.name}': unknown member '{name}'")
        return found

    def member(self, name: str) -> MemberSpec:
        for spec in self.members:
            if spec.name == name:
                return spec
        raise KeyError(name)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def default_team_path() -> Path:
    return Path(str(resources.files("pinfactory") / "data" / "default-team.yaml"))


def load_team(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Team:
    """Load and validate a team file (the packaged default team when ``path`` is None)."""
    environ = os.environ if environ is None else environ
    source = Path(path) if path is not None else default_team_path()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise TeamFileError(f"{source}: cannot read team file: {exc.strerror or exc}") from exc
    return parse_team(text, str(source), environ)


def parse_team(text: str, source: str, environ: Mapping[str, str]) -> Team:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TeamFileError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise TeamFileError(f"{source}: a team file is a YAML mapping with 'members' and 'routing'")
    data = _interpolate(raw, environ)
    try:
        spec = TeamSpec.model_validate(data)
    except ValidationError as exc:
        raise TeamFileError(_describe(exc, source, node)) from exc
    team = Team(spec, source, environ)
    _apply_upstream_defaults(team)
    _check_members(team, node)
    _check_routing(team, node)
    _check_verification(team, node)
    return team


def _check_verification(team: Team, node: yaml.Node | None) -> None:
    if team.spec.verification is None:
        return
    declared = {m.name: m.tier for m in team.spec.members}
    problems = team.spec.verification.problems(declared)
    if problems:
        lines = [_at(team.source, node, ("verification", *loc), p) for loc, p in problems]
        raise TeamFileError("\n".join(lines))


def _apply_upstream_defaults(team: Team) -> None:
    """Members with ``settings.upstream`` get the team's ``upstream:`` (and shared state) as
    defaults; what a member sets itself wins, field by field (``breaker`` too)."""

    defaults = team.spec.upstream.model_dump(exclude_unset=True)
    shared = {"state_url": team.spec.state.redis_url, "state_namespace": f"pf:{team.name}"}
    if team.spec.state.redis_url:
        defaults.update({k: v for k, v in shared.items() if k not in defaults})
    if not defaults:
        return
    for spec in team.spec.members:
        try:
            cls = member_class(spec.kind)
        except TeamFileError:
            continue  # _check_members names the unknown kind
        if "state_url" in cls.Settings.model_fields and team.spec.state.redis_url:
            for key, value in shared.items():  # e.g. balanced: shared in-flight counts
                spec.settings.setdefault(key, value)
        if "upstream" not in cls.Settings.model_fields:
            continue
        own = spec.settings.get("upstream")
        own = dict(own) if isinstance(own, Mapping) else {}
        merged = {**defaults, **own}
        if isinstance(defaults.get("breaker"), Mapping) and isinstance(own.get("breaker"), Mapping):
            merged["breaker"] = {**defaults["breaker"], **own["breaker"]}
        spec.settings["upstream"] = merged


def _check_members(team: Team, node: yaml.Node | None) -> None:

    for index, spec in enumerate(team.spec.members):
        where = ("members", index)
        try:
            cls = member_class(spec.kind)
        except TeamFileError as exc:
            raise TeamFileError(_at(team.source, node, (*where, "kind"), exc.message)) from exc
        if spec.name not in team.member_names:
            continue
        try:
            cls.Settings.model_validate(spec.settings)
        except ValidationError as exc:
            raise TeamFileError(_describe(exc, team.source, node, (*where, "settings"))) from exc
        try:
            spec.member_capabilities(cls.capabilities)
        except ValidationError as exc:
            at = (*where, "capabilities")
            raise TeamFileError(_describe(exc, team.source, node, at)) from exc


def _check_routing(team: Team, node: yaml.Node | None) -> None:

    if team.spec.routing.fallback not in team.member_names:
        problem = (
            f"fallback member '{team.spec.routing.fallback}' is not an enabled member; "
            f"enabled: {', '.join(team.member_names)}"
        )
        raise TeamFileError(_at(team.source, node, ("routing", "fallback"), problem))
    try:
        build_router(team)
    except ValidationError as exc:
        raise TeamFileError(_describe(exc, team.source, node, ("routing",))) from exc
    except TeamFileError as exc:
        raise TeamFileError(f"{team.source}: routing: {exc.message}") from exc


def _interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in strings."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [_interpolate(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, environ) for k, v in value.items()}
    return value


def _describe(
    exc: ValidationError, source: str, node: yaml.Node | None, prefix: Sequence[Any] = ()
) -> str:
    lines = []
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field; check the spelling against the team file reference"
        elif error["type"] == "missing":
            message = "required field is missing"
        elif isinstance(error.get("input"), bool) and error["type"] == "string_type":
            message += " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the word)"
        lines.append(_at(source, node, loc, message))
    return "\n".join(lines)


def _at(source: str, node: yaml.Node | None, loc: Sequence[Any], message: str) -> str:
    line = _line_of(node, loc)
    field = ".".join(str(part) for part in loc) or "(top level)"
    where = f"{source}:{line}" if line else source
    return f"{where}: {field}: {message}"


def _line_of(node: yaml.Node | None, loc: Iterable[Any]) -> int | None:
    """The 1-based line of the deepest node the location reaches."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, _ in node.value if k.value == part), None)
            if match is None:
                break
            line = (key or match).start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
