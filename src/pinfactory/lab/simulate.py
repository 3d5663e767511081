"""The cost simulator: what a request log cost as it ran, and under a tiered policy.

A log is either the gateway's SQLite ledger (table ``requests``) or a CSV with
``prompt, input_tokens, output_tokens, model`` and optionally ``cost_usd``
(what it cost as it ran), ``unit``, ``tags`` (``;``-separated) and ``label``.
The policy is a team file: its router decides each logged request again and
its member prices price the decision (same token counts; money in Decimal).

Labels give the expected quality change: a member is taken to serve a
request well when the request's label is one of the member's ``tags`` (or
the member is tagged ``general``). The ledger keeps no prompt text, so on a
ledger log only rules on unit, user, tags and sizes can match.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from pinfactory.errors import DatasetError
from pinfactory.ledger.base import from_nano
from pinfactory.members.base import Usage
from pinfactory.request import Request
from pinfactory.routing import build_router
from pinfactory.team import Team, parse_team

REQUIRED = ("prompt", "input_tokens", "output_tokens", "model")


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    prompt: str
    input_tokens: int
    output_tokens: int
    model: str
    cost_usd: Decimal | None = None
    unit: str = "default"
    user: str = ""
    tags: tuple[str, ...] = ()
    label: str | None = None


@dataclass(frozen=True, slots=True)
class MemberShare:
    member: str
    tier: str
    requests: int
    share: float
    cost_usd: Decimal


@dataclass(frozen=True)
class Simulation:
    requests: int
    cost_as_run: Decimal
    cost_policy: Decimal
    members: list[MemberShare]
    tiers: dict[str, float]
    quality_as_run: float | None
    quality_policy: float | None

    @property
    def saving(self) -> float:
        return float(1 - self.cost_policy / self.cost_as_run) if self.cost_as_run else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cost_as_run_usd": str(self.cost_as_run),
            "cost_policy_usd": str(self.cost_policy),
            "saving": self.saving,
            "members": [
                {
                    "member": m.member,
                    "tier": m.tier,
                    "requests": m.requests,
                    "share": m.share,
                    "cost_usd": str(m.cost_usd),
                }
                for m in self.members
            ],
            "tier_shares": self.tiers,
            "quality_as_run": self.quality_as_run,
            "quality_policy": self.quality_policy,
        }


def read_log(path: Path) -> list[LoggedRequest]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such log file")
    with path.open("rb") as handle:
        sqlite = handle.read(16) == b"SQLite format 3\x00"
    return _read_ledger(path) if sqlite else _read_csv(path)


def _read_csv(path: Path) -> list[LoggedRequest]:
    csv.field_size_limit(sys.maxsize)
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}"
            )
        for line, record in enumerate(reader, start=2):
            tokens = []
            for field in ("input_tokens", "output_tokens"):
                try:
                    value = int(record[field])
                except (TypeError, ValueError):
                    raise DatasetError(
                        f"{path}, row {line}: {field} {record[field]!r} is not an integer"
                    ) from None
                if value < 0:
                    raise DatasetError(f"{path}, row {line}: {field} is negative")
                tokens.append(value)
            cost = None
            if record.get("cost_usd") not in (None, ""):
                try:
                    cost = Decimal(record["cost_usd"])
                except InvalidOperation:
                    raise DatasetError(
                        f"{path}, row {line}: cost_usd {record['cost_usd']!r} is not a number"
                    ) from None
                if cost < 0:
                    raise DatasetError(f"{path}, row {line}: cost_usd is negative")
            rows.append(
                LoggedRequest(
                    prompt=record["prompt"],
                    input_tokens=tokens[0],
                    output_tokens=tokens[1],
                    model=record["model"],
                    cost_usd=cost,
                    unit=record.get("unit") or "default",
                    tags=tuple(t for t in (record.get("tags") or "").split(";") if t),
                    label=record.get("label") or None,
                )
            )
    return rows


def _read_ledger(path: Path) -> list[LoggedRequest]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            records = db.execute(
                "SELECT model, member, input_tokens, output_tokens, cost_nusd, unit, user, tags "
                "FROM requests WHERE status < 400 ORDER BY seq"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise DatasetError(f"{path}: not a pinfactory ledger ({exc})") from None
    return [
        LoggedRequest(
            prompt="",
            input_tokens=int(tin),
            output_tokens=int(tout),
            model=member or model,
            cost_usd=from_nano(int(nano)),
            unit=unit,
            user=user,
            tags=tuple(json.loads(tags or "[]")),
        )
        for model, member, tin, tout, nano, unit, user, tags in records
    ]


def load_policy(path: Path) -> Team:
    """The team with every member enabled: the simulation prices all of them."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read policy: {exc.strerror}") from None
    needed = {
        name
        for member in (raw or {}).get("members", [])
        if isinstance(member, dict)
        for name in member.get("requires_env", [])
    }
    environ = dict(os.environ) | dict.fromkeys(needed, "http://simulated.invalid")
    return parse_team(path.read_text(encoding="utf-8"), str(path), environ)


def simulate(log: Path, policy: Path) -> Simulation:
    requests = read_log(log)
    if not requests:
        raise DatasetError(f"{log}: no requests")
    team = load_policy(policy)
    router = build_router(team)
    specs = {m.name: m for m in team.members}
    as_run = Decimal(0)
    under = Decimal(0)
    counts: Counter[str] = Counter()
    spend: dict[str, Decimal] = {}
    labelled = served_as_run = served_policy = 0
    for row in requests:
        usage = Usage(row.input_tokens, row.output_tokens)
        if row.cost_usd is not None:
            as_run += row.cost_usd
        elif row.model in specs:
            as_run += specs[row.model].price.cost(usage)
        else:
            raise DatasetError(
                f"{log}: model '{row.model}' has no cost_usd and is not a member of "
                f"{policy.name} ({', '.join(specs)}), so it cannot be priced"
            )
        request = Request.from_text(row.prompt, unit=row.unit, user=row.user, tags=row.tags)
        member = router.decide(request).member
        cost = specs[member].price.cost(usage)
        under += cost
        counts[member] += 1
        spend[member] = spend.get(member, Decimal(0)) + cost
        if row.label is not None:
            labelled += 1
            served_policy += _serves(specs[member].tags, row.label)
            served_as_run += row.model in specs and _serves(specs[row.model].tags, row.label)
    total = len(requests)
    members = [
        MemberShare(name, specs[name].tier, counts[name], counts[name] / total, spend[name])
        for name in sorted(counts, key=lambda n: -counts[n])
    ]
    tiers: Counter[str] = Counter()
    for share in members:
        tiers[share.tier] += share.requests
    return Simulation(
        requests=total,
        cost_as_run=as_run,
        cost_policy=under,
        members=members,
        tiers={tier: n / total for tier, n in tiers.items()},
        quality_as_run=served_as_run / labelled if labelled else None,
        quality_policy=served_policy / labelled if labelled else None,
    )


def _serves(tags: list[str], label: str) -> bool:
    return label in tags or "general" in tags
