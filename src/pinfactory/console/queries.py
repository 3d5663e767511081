"""The console's reads: every page's rows, paged and aggregated in SQL.

The console reads the ledger through the store's own reader connection (the
one reports use, on its own thread, so pages never wait behind commits) and
never writes to it. Each query returns at most one page of rows or one row
per group, so a page costs the same on 100 requests as on 100,000
(``bench/console_pages.py`` measures it).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pinfactory.errors import LedgerError
from pinfactory.ledger.base import AuditRecord, Ledger, LedgerEntry, Review, from_nano
from pinfactory.ledger.record import REQUEST_COLUMNS
from pinfactory.ledger.store import REVIEW_COLUMNS, SQLLedger, _entry, _review

StatusFilter = Literal["ok", "error"]
ROUTE_MARKERS = ("fallback", "downgraded", "queued for review")  # counted per route cell
LONG_WINDOW_S = 2 * 86400  # aggregates over longer windows scan instead of using the index
HEALTH_SAMPLE = 10_000  # latency percentiles: over this many of the newest answers
LIVE_COLUMNS = f"seq, {REQUEST_COLUMNS}"


@dataclass(frozen=True, slots=True)
class LiveFilter:
    """Which requests a Live page shows: one unit, member or status class (None: any)."""

    unit: str | None = None
    member: str | None = None
    status: StatusFilter | None = None


@dataclass(slots=True)
class RequestRow:
    """One request as Live lists it: its ledger entry, and from its audit entries the
    confidence, the verdict's label and how many member calls it took."""

    seq: int
    entry: LedgerEntry
    confidence: float | None = None
    verdict: str | None = None
    calls: int = 0


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
class SpendCell:
    """One (time bucket, unit, member) group of requests: counts, tokens, nano-dollars."""

    bucket: int
    unit: str
    member: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    nusd: int


@dataclass(frozen=True, slots=True)
class SpendCube:
    """The window's requests grouped by time bucket, unit and member, summed every way."""

    cells: list[SpendCell]
    since: float
    until: float | None
    width_s: int

    def totals(self, by: Literal["unit", "member"]) -> list[Totals]:
        """One row per unit or member; costliest first."""
        sums: dict[str, list[int]] = {}
        for cell in self.cells:
            row = sums.setdefault(cell.unit if by == "unit" else cell.member, [0] * 5)
            for index, value in enumerate(
                (cell.requests, cell.errors, cell.input_tokens, cell.output_tokens, cell.nusd)
            ):
                row[index] += value
        rows = [Totals(key, *values) for key, values in sums.items()]
        return sorted(rows, key=lambda r: (-r.nusd, -r.requests, r.key))

    def over_time(self, by: Literal["unit", "member"] | Mapping[str, str]) -> Bucketed:
        """Dollars per time bucket, one series per unit or member, or per group of
        members (``by`` maps each member to its group, e.g. its tier; others are ``-``)."""

        def key(cell: SpendCell) -> str:
            if by == "unit":
                return cell.unit
            if by == "member":
                return cell.member
            return by.get(cell.member, "-")

        points = [(c.bucket, key(c), float(from_nano(c.nusd))) for c in self.cells]
        return _bucketed(points, self.since, self.until, self.width_s)


@dataclass(frozen=True, slots=True)
class RouteCell:
    """Answered requests of one time bucket, router and reason, and the latest of them."""

    bucket: int
    router: str
    reason: str
    requests: int
    last: float
    fallbacks: int = 0
    downgrades: int = 0
    queued: int = 0


@dataclass(frozen=True, slots=True)
class RouteCube:
    """The window's answered requests grouped by time bucket, router and reason."""

    cells: list[RouteCell]
    since: float
    until: float | None
    width_s: int

    def over_time(self) -> Bucketed:
        """Answered requests per time bucket, one series per router."""
        points = [(c.bucket, c.router, float(c.requests)) for c in self.cells]
        return _bucketed(points, self.since, self.until, self.width_s)

    def routes(self, limit: int = 25) -> list[RouteCount]:
        """The most frequent (router, reason) pairs."""
        sums: dict[tuple[str, str], tuple[int, float]] = {}
        for c in self.cells:
            n, last = sums.get((c.router, c.reason), (0, 0.0))
            sums[(c.router, c.reason)] = (n + c.requests, max(last, c.last))
        rows = [RouteCount(r, k, n, t) for (r, k), (n, t) in sums.items()]
        return sorted(rows, key=lambda r: (-r.requests, r.router, r.reason))[:limit]

    @property
    def fallbacks(self) -> int:
        """Requests no route claimed, answered by the declared fallback."""
        return sum(c.fallbacks for c in self.cells)

    @property
    def downgrades(self) -> int:
        """Requests a quota or budget sent to a cheaper member."""
        return sum(c.downgrades for c in self.cells)

    @property
    def queued(self) -> int:
        """Requests a limit held for a person's approval, then answered."""
        return sum(c.queued for c in self.cells)


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

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    async def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # the store's reader connection and thread: reads never wait behind the writer
        return await self._ledger._read(self._ledger._rows(sql, params))

    def _since(self, since: float) -> str:
        """SQL for ``time >= ?`` in an aggregate over the window from ``since``.

        For a window longer than a day SQLite reads the table straight through (``+time``
        keeps it off the time index): about half the CPU of fetching most rows by index.
        PostgreSQL chooses from its own statistics.
        """
        if not self._postgres and time.time() - since > LONG_WINDOW_S:
            return "+time >= ?"
        return "time >= ?"

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
        """Confidence, verdict and call count from the rows' audit entries."""
        if not rows:
            return
        by_id = {row.entry.request_id: row for row in rows}
        marks = ", ".join("?" * len(by_id))
        # No kind filter in SQL: with one, SQLite walks the (kind, seq) index over the
        # whole chain instead of the request_id index (0.3 s against 2 ms at 100,000 rows).
        found = await self._select(
            f"SELECT request_id, kind, body FROM audit WHERE request_id IN ({marks}) ORDER BY seq",
            list(by_id),
        )
        for request_id, kind, body in found:
            if kind not in ("decision", "verdict", "call"):
                continue
            data = json.loads(body).get("payload") or {}
            row = by_id[str(request_id)]
            if kind == "call":
                row.calls += 1
            elif kind == "decision" and isinstance(data.get("confidence"), int | float):
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

    async def spend_cube(
        self, since: float, width_s: int, unit: str | None, until: float | None = None
    ) -> SpendCube:
        """Requests, errors, tokens and spend per time bucket, unit and member: one scan."""
        where, params = self._since(since), list[Any]([since])
        if unit is not None:
            where, params = where + " AND unit = ?", [*params, unit]
        found = await self._select(
            f"SELECT {self._bucket()} AS b, unit, COALESCE(member, '-') AS m, COUNT(*), "
            "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(input_tokens), "
            f"SUM(output_tokens), SUM(cost_nusd) FROM requests WHERE {where} GROUP BY b, unit, m",
            [width_s, *params],
        )
        cells = [
            SpendCell(
                int(b), str(u), str(m), int(n), int(e or 0), int(i or 0), int(o or 0), int(c or 0)
            )
            for b, u, m, n, e, i, o, c in found
        ]
        return SpendCube(cells, since, until, width_s)

    async def route_cube(self, since: float, width_s: int, until: float | None = None) -> RouteCube:
        """Answered requests per time bucket, router and reason (up to its first ' ('): one scan."""
        found = await self._select(
            f"SELECT {self._bucket()} AS b, COALESCE(router, '-') AS r, {self._reason()} AS k, "
            "COUNT(*), MAX(time), "
            + ", ".join("SUM(CASE WHEN reason LIKE ? THEN 1 ELSE 0 END)" for _ in ROUTE_MARKERS)
            + f" FROM requests WHERE {self._since(since)} AND status < 400 GROUP BY b, r, k",
            [width_s, *(f"%{marker}%" for marker in ROUTE_MARKERS), since],
        )
        cells = [
            RouteCell(int(b), str(r), str(k), int(n), float(t), *(int(m or 0) for m in marks))
            for b, r, k, n, t, *marks in found
        ]
        return RouteCube(cells, since, until, width_s)

    def _reason(self) -> str:
        """SQL for a reason without its per-request detail: the text before its first ' ('."""
        if self._postgres:
            return "split_part(COALESCE(reason, '-'), ' (', 1)"
        return (
            "CASE WHEN instr(reason, ' (') > 0 THEN substr(reason, 1, instr(reason, ' (') - 1) "
            "ELSE COALESCE(reason, '-') END"
        )

    async def totals(
        self, by: Literal["unit", "member", "user"], since: float, unit: str | None
    ) -> list[Totals]:
        """One row per unit, member or user since ``since``; costliest first."""
        key = {"unit": "unit", "member": "COALESCE(member, '-')", "user": '"user"'}[by]
        where, params = self._since(since), list[Any]([since])
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

    # -- Members ------------------------------------------------------------------------------

    async def health(
        self, since: float, sample: int = HEALTH_SAMPLE, errors: int = 500
    ) -> list[Health]:
        """Per member since ``since``: requests and errors; p50/p95 latency over the most
        recent ``sample`` answers of the team; the last error among the latest ``errors``."""
        counts = await self._select(
            "SELECT member, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) "
            f"FROM requests WHERE {self._since(since)} AND member IS NOT NULL GROUP BY member",
            [since],
        )
        answers = await self._select(
            "SELECT member, latency_ms FROM requests WHERE time >= ? AND status < 400 "
            "AND member IS NOT NULL ORDER BY seq DESC LIMIT ?",
            [since, sample],
        )
        failures = await self._select(
            "SELECT member, error, time FROM requests WHERE time >= ? AND status >= 400 "
            "AND member IS NOT NULL ORDER BY seq DESC LIMIT ?",
            [since, errors],
        )
        latencies: dict[str, list[float]] = {}
        for member, ms in answers:
            latencies.setdefault(str(member), []).append(float(ms))
        last: dict[str, tuple[str | None, float]] = {}
        for member, error, at in failures:
            last.setdefault(str(member), (str(error) if error else None, float(at)))
        found = []
        for member, n, e in counts:
            ranked = sorted(latencies.get(str(member), []))
            found.append(
                Health(
                    str(member),
                    int(n),
                    int(e or 0),
                    percentile(ranked, 0.50),
                    percentile(ranked, 0.95),
                    *last.get(str(member), (None, None)),
                )
            )
        return found

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
    return RequestRow(int(row[0]), _entry(row[1:]))


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


def percentile(ranked: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile of sorted values; None when there are none."""
    if not ranked:
        return None
    return ranked[max(0, math.ceil(q * len(ranked)) - 1)]
