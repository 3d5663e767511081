"""The console's reads: every page's rows, paged and aggregated in SQL.

The console reads the ledger through the store's own reader connection (the
one reports use, on its own thread, so pages never wait behind commits) and
never writes to it. Each query returns at most one page of rows or one row
per group, so a page costs the same on 100 requests as on 100,000
(``bench/console_pages.py`` measures it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pinfactory.errors import LedgerError
from pinfactory.ledger.base import AuditRecord, Ledger, Review, from_nano
from pinfactory.ledger.store import REVIEW_COLUMNS, SQLLedger, _review

StatusFilter = Literal["ok", "error"]
LIVE_COLUMNS = (
    'seq, request_id, time, unit, "user", model, member, router, reason, input_tokens, '
    "output_tokens, cost_nusd, latency_ms, status, error, stream"
)


@dataclass(frozen=True, slots=True)
class LiveFilter:
    """Which requests a Live page shows: one unit, member or status class (None: any)."""

    unit: str | None = None
    member: str | None = None
    status: StatusFilter | None = None


@dataclass(slots=True)
class RequestRow:
    """One request as Live lists it; ``confidence`` and ``verdict`` come from its audit entries."""

    seq: int
    request_id: str
    time: float
    unit: str
    user: str
    model: str
    member: str | None
    router: str | None
    reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms: float
    status: int
    error: str | None
    stream: bool
    confidence: float | None = None
    verdict: str | None = None


@dataclass(frozen=True, slots=True)
class ChainStep:
    """One audit entry of a request: its kind and payload as sealed."""

    seq: int
    kind: str
    time: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Bucketed:
    """A value per time bucket (epoch seconds) and series name, for a chart."""

    starts: list[float]
    series: dict[str, list[float]]

    @property
    def empty(self) -> bool:
        return not self.starts


@dataclass(frozen=True, slots=True)
class Totals:
    """Requests, errors, tokens and nano-dollars of one group (member, unit, user...)."""

    key: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    nusd: int

    @property
    def cost_usd(self) -> Decimal:
        return from_nano(self.nusd)


@dataclass(frozen=True, slots=True)
class Health:
    """A member's recent health: traffic, errors, latency percentiles (ms), last error."""

    member: str
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    last_error: str | None = None
    last_error_time: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class RouteCount:
    """How often a router gave one reason, and when it last did."""

    router: str
    reason: str
    requests: int
    last: float


@dataclass(slots=True)
class Page:
    """One page of rows and the cursor of the next (older) page, if any."""

    rows: list[RequestRow] = field(default_factory=list)
    older: int | None = None


class ConsoleQueries:
    """The SQL behind the console's pages, on a SQLite or PostgreSQL ledger."""

    def __init__(self, ledger: Ledger) -> None:
        if not isinstance(ledger, SQLLedger):
            raise LedgerError("the console reads SQL ledgers only (SQLite or PostgreSQL)")
        self._ledger = ledger
        self._postgres = ledger.dialect.name == "postgresql"

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # the store's reader connection and thread: reads never wait behind the writer
        return await self._ledger._read(self._ledger._rows(sql, params))

    def _bucket(self) -> str:
        """SQL for ``time`` floored to a multiple of the bucket width (one ``?``)."""
        return "FLOOR(time / ?)" if self._postgres else "CAST(time / ? AS INTEGER)"

    # -- Live ---------------------------------------------------------------------------------

    async def requests(
        self,
        where: LiveFilter,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> Page:
        """Newest first: rows after seq ``after`` (new ones), or a page before ``before``."""
        sql, params = _filtered(where)
        if after is not None:
            sql, params = sql + " AND seq > ?", [*params, after]
        if before is not None:
            sql, params = sql + " AND seq < ?", [*params, before]
        found = await self._select(
            f"SELECT {LIVE_COLUMNS} FROM requests WHERE {sql} ORDER BY seq DESC LIMIT ?",
            [*params, limit + 1],
        )
        rows = [_request_row(r) for r in found[:limit]]
        await self._annotate(rows)
        older = rows[-1].seq if len(found) > limit and after is None else None
        return Page(rows, older)

    async def latest_seq(self) -> int:
        found = await self._select("SELECT MAX(seq) FROM requests")
        return int(found[0][0] or 0) if found else 0

    async def _annotate(self, rows: list[RequestRow]) -> None:
        """Confidence and verdict from the rows' ``decision`` and ``verdict`` audit entries."""
        if not rows:
            return
        by_id = {row.request_id: row for row in rows}
        marks = ", ".join("?" * len(by_id))
        found = await self._select(
            f"SELECT request_id, kind, body FROM audit WHERE request_id IN ({marks}) "
            "AND kind IN ('decision', 'verdict') ORDER BY seq",
            list(by_id),
        )
        for request_id, kind, body in found:
            data = json.loads(body).get("payload") or {}
            row = by_id[str(request_id)]
            if kind == "decision" and isinstance(data.get("confidence"), int | float):
                row.confidence = float(data["confidence"])
            elif kind == "verdict":
                label = data.get("label")
                row.verdict = str(label) if label is not None else None
                if isinstance(data.get("confidence"), int | float):
                    row.confidence = float(data["confidence"])

    async def request(self, request_id: str, unit: str | None = None) -> RequestRow | None:
        """One request by id (the newest row of a reused id); None if absent or not ``unit``'s."""
        where, params = "request_id = ?", [request_id]
        if unit is not None:
            where, params = where + " AND unit = ?", [*params, unit]
        found = await self._select(
            f"SELECT {LIVE_COLUMNS} FROM requests WHERE {where} ORDER BY seq DESC LIMIT 1", params
        )
        if not found:
            return None
        rows = [_request_row(found[0])]
        await self._annotate(rows)
        return rows[0]

    async def chain(self, request_id: str) -> list[ChainStep]:
        """The request's audit entries in chain order."""
        records = await self._ledger.audit(request_id)
        return [_step(record) for record in records]

    async def review_of(self, request_id: str) -> Review | None:
        found = await self._select(
            f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE request_id = ? ORDER BY created DESC "
            "LIMIT 1",
            [request_id],
        )
        return _review(found[0]) if found else None

    # -- Spend and Routing --------------------------------------------------------------------

    async def cost_over_time(
        self,
        by: Literal["unit", "member"],
        since: float,
        width_s: int,
        unit: str | None,
        until: float | None = None,
    ) -> Bucketed:
        """Dollars per bucket of ``width_s`` seconds from ``since`` to ``until`` (default now),
        one series per unit or member."""
        key = "unit" if by == "unit" else "COALESCE(member, '-')"
        where, params = "time >= ?", list[Any]([since])
        if unit is not None:
            where, params = where + " AND unit = ?", [*params, unit]
        found = await self._select(
            f"SELECT {self._bucket()} AS b, {key} AS k, SUM(cost_nusd) FROM requests "
            f"WHERE {where} GROUP BY b, k ORDER BY b",
            [width_s, *params],
        )
        points = [(int(b), str(k), float(from_nano(int(c or 0)))) for b, k, c in found]
        return _bucketed(points, since, until, width_s)

    async def decisions_over_time(
        self, since: float, width_s: int, until: float | None = None
    ) -> Bucketed:
        """Answered requests per bucket (as :meth:`cost_over_time`), one series per router."""
        found = await self._select(
            f"SELECT {self._bucket()} AS b, COALESCE(router, '-') AS k, COUNT(*) FROM requests "
            "WHERE time >= ? AND status < 400 GROUP BY b, k ORDER BY b",
            [width_s, since],
        )
        points = [(int(b), str(k), float(n)) for b, k, n in found]
        return _bucketed(points, since, until, width_s)

    async def totals(
        self, by: Literal["unit", "member", "user"], since: float, unit: str | None
    ) -> list[Totals]:
        """One row per unit, member or user since ``since``; costliest first."""
        key = {"unit": "unit", "member": "COALESCE(member, '-')", "user": '"user"'}[by]
        where, params = "time >= ?", list[Any]([since])
        if unit is not None:
            where, params = where + " AND unit = ?", [*params, unit]
        found = await self._select(
            f"SELECT {key} AS k, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
            f"SUM(input_tokens), SUM(output_tokens), SUM(cost_nusd) FROM requests "
            f"WHERE {where} GROUP BY k",
            params,
        )
        rows = [
            Totals(str(k), int(n), int(e or 0), int(i or 0), int(o or 0), int(c or 0))
            for k, n, e, i, o, c in found
        ]
        return sorted(rows, key=lambda r: (-r.nusd, -r.requests, r.key))

    async def route_counts(self, since: float, limit: int = 25) -> list[RouteCount]:
        """The most frequent (router, reason) pairs of answered requests since ``since``."""
        found = await self._select(
            "SELECT COALESCE(router, '-'), COALESCE(reason, '-'), COUNT(*), MAX(time) "
            "FROM requests WHERE time >= ? AND status < 400 GROUP BY router, reason "
            "ORDER BY COUNT(*) DESC LIMIT ?",
            [since, limit],
        )
        return [RouteCount(str(r), str(s), int(n), float(t)) for r, s, n, t in found]

    async def reason_count(self, since: float, pattern: str) -> int:
        """Answered requests since ``since`` whose reason matches the SQL LIKE ``pattern``."""
        found = await self._select(
            "SELECT COUNT(*) FROM requests WHERE time >= ? AND status < 400 AND reason LIKE ?",
            [since, pattern],
        )
        return int(found[0][0] or 0)

    async def audit_kind_count(self, kinds: Sequence[str], since_seq: int = 0) -> dict[str, int]:
        """How many audit entries of each kind (fallbacks, retries...) the chain holds."""
        if not kinds:
            return {}
        marks = ", ".join("?" * len(kinds))
        found = await self._select(
            f"SELECT kind, COUNT(*) FROM audit WHERE seq > ? AND kind IN ({marks}) GROUP BY kind",
            [since_seq, *kinds],
        )
        return {str(k): int(n) for k, n in found}

    # -- Members ------------------------------------------------------------------------------

    async def health(self, since: float) -> list[Health]:
        """Per member since ``since``: requests, errors, p50/p95 latency of answers, last error."""
        ranked = (
            "SELECT member, latency_ms, status, "
            "ROW_NUMBER() OVER (PARTITION BY member, status < 400 ORDER BY latency_ms) AS r, "
            "COUNT(*) OVER (PARTITION BY member, status < 400) AS n "
            "FROM requests WHERE time >= ? AND member IS NOT NULL"
        )
        found = await self._select(
            "SELECT member, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
            "MIN(CASE WHEN status < 400 AND r >= 0.50 * n THEN latency_ms END), "
            "MIN(CASE WHEN status < 400 AND r >= 0.95 * n THEN latency_ms END) "
            f"FROM ({ranked}) AS ranked GROUP BY member",
            [since],
        )
        errors = await self._select(
            "SELECT member, error, time FROM requests WHERE seq IN ("
            "SELECT MAX(seq) FROM requests WHERE time >= ? AND status >= 400 "
            "AND member IS NOT NULL GROUP BY member)",
            [since],
        )
        last = {str(m): (str(e) if e else None, float(t)) for m, e, t in errors}
        return [
            Health(
                str(m),
                int(n),
                int(e or 0),
                float(p50) if p50 is not None else None,
                float(p95) if p95 is not None else None,
                *last.get(str(m), (None, None)),
            )
            for m, n, e, p50, p95 in found
        ]

    # -- Reviews and quotas -------------------------------------------------------------------

    async def reviews(
        self, decided: bool, unit: str | None, limit: int = 50, offset: int = 0
    ) -> list[Review]:
        """Pending reviews oldest first, or decided ones newest first."""
        where = "status <> 'pending'" if decided else "status = 'pending'"
        params: list[Any] = []
        if unit is not None:
            where, params = where + " AND unit = ?", [unit]
        order = "decided DESC" if decided else "created"
        found = await self._select(
            f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_review(row) for row in found]

    async def pending_reviews(self, unit: str | None) -> int:
        where, params = "status = 'pending'", list[Any]()
        if unit is not None:
            where, params = where + " AND unit = ?", [unit]
        found = await self._select(f"SELECT COUNT(*) FROM reviews WHERE {where}", params)
        return int(found[0][0] or 0)

    async def counters(self, prefix: str, window_start: float) -> dict[str, tuple[int, int]]:
        """(calls, nano-dollars) of every quota counter whose key starts with ``prefix``."""
        found = await self._select(
            "SELECT key, calls, nusd FROM quota_usage WHERE window_start = ? AND key LIKE ?",
            [window_start, prefix.replace("%", "") + "%"],
        )
        return {str(k): (int(c), int(n)) for k, c, n in found}

    async def head_record(self) -> AuditRecord | None:
        """The newest audit entry, if the chain has any."""
        found = await self._select(
            "SELECT seq, request_id, kind, body, prev_hash, hash FROM audit "
            "ORDER BY seq DESC LIMIT 1"
        )
        if not found:
            return None
        s, r, k, b, p, h = found[0]
        return AuditRecord(int(s), str(r), str(k), str(b), str(p), str(h))


def _filtered(where: LiveFilter) -> tuple[str, list[Any]]:
    sql, params = "1 = 1", list[Any]()
    if where.unit:
        sql, params = sql + " AND unit = ?", [*params, where.unit]
    if where.member:
        sql, params = sql + " AND member = ?", [*params, where.member]
    if where.status == "ok":
        sql += " AND status < 400"
    elif where.status == "error":
        sql += " AND status >= 400"
    return sql, params


def _request_row(row: Sequence[Any]) -> RequestRow:
    seq, rid, t, unit, user, model, member, router, reason, tin, tout, nusd = row[:12]
    ms, status, error, stream = row[12:]
    return RequestRow(
        seq=int(seq),
        request_id=str(rid),
        time=float(t),
        unit=str(unit),
        user=str(user),
        model=str(model),
        member=member,
        router=router,
        reason=reason,
        input_tokens=int(tin),
        output_tokens=int(tout),
        cost_usd=from_nano(int(nusd)),
        latency_ms=float(ms),
        status=int(status),
        error=error,
        stream=bool(stream),
    )


def _step(record: AuditRecord) -> ChainStep:
    body = json.loads(record.body)
    data = body.get("payload")
    return ChainStep(
        record.seq,
        record.kind,
        float(body.get("time") or 0.0),
        data if isinstance(data, dict) else {"value": data},
    )


def _bucketed(
    points: Sequence[tuple[int, str, float]], since: float, until: float | None, width_s: int
) -> Bucketed:
    """Dense series over every bucket from ``since`` to ``until`` (default now); gaps are 0."""
    if not points:
        return Bucketed([], {})
    end = time.time() if until is None else until
    first = min(int(since // width_s), *(p[0] for p in points))
    last = max(int(end // width_s), *(p[0] for p in points))
    names = sorted({p[1] for p in points})
    series = {name: [0.0] * (last - first + 1) for name in names}
    for bucket, name, value in points:
        series[name][bucket - first] += value
    return Bucketed([float((first + i) * width_s) for i in range(last - first + 1)], series)
