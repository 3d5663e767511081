"""The console's pages: Live, a request's chain, Spend, Routing, Members, Reviews, Audit, Lab.

Each handler reads its query parameters (refused with a 400 page naming the
parameter and what is allowed), runs the page's queries and renders one
template. Every read is scoped by the viewer: a unit key's queries carry its
unit, and another unit's request is answered 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast
from urllib.parse import urlencode

from markdown_it import MarkdownIt
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request as HTTPRequest
from starlette.responses import FileResponse, Response

from pinfactory.console.audit import ChainChecks
from pinfactory.console.queries import (
    HEALTH_SAMPLE,
    ConsoleQueries,
    LiveFilter,
    StatusFilter,
    Totals,
)
from pinfactory.console.session import Keys, Viewer
from pinfactory.console.spend import limit_bars, savings
from pinfactory.console.web import Web, when
from pinfactory.errors import Conflict, ForbiddenError, NotFound, PinfactoryError, RequestError
from pinfactory.ledger.base import SpendRow
from pinfactory.ledger.reports import spend_csv
from pinfactory.reliability.breaker import breakers_of
from pinfactory.request import Request

if TYPE_CHECKING:
    from pathlib import Path

    from pinfactory.pipeline import Pipeline


class Host(Protocol):
    """What the console needs of the gateway: its keys and its open pipeline."""

    @property
    def keyring(self) -> Keys: ...

    @property
    def ready(self) -> Pipeline:
        """The pipeline; PinfactoryError while the gateway is starting."""


PAGE_ROWS = 50
STREAM_POLL_S = 0.25
WINDOWS: dict[str, tuple[int, int]] = {  # name -> (seconds back, bucket width in seconds)
    "1h": (3600, 60),
    "24h": (86400, 3600),
    "7d": (7 * 86400, 6 * 3600),
    "30d": (30 * 86400, 86400),
}
DEFAULT_WINDOW = "24h"
SPEND_GROUPS = ("unit", "member", "tier", "user")
REPORT_FILES = (".png", ".svg", ".csv", ".json", ".md")


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    since: float
    width_s: int


def window(http: HTTPRequest) -> Window:
    name = http.query_params.get("window", DEFAULT_WINDOW)
    if name not in WINDOWS:
        raise RequestError(
            f"'window' must be one of {', '.join(WINDOWS)}; got '{name}'", param="window"
        )
    back, width = WINDOWS[name]
    return Window(name, time.time() - back, width)


def live_filter(http: HTTPRequest, viewer: Viewer) -> LiveFilter:
    query = http.query_params
    status = query.get("status") or None
    if status not in (None, "ok", "error"):
        raise RequestError(f"'status' must be ok or error; got '{status}'", param="status")
    unit = viewer.unit_scope or query.get("unit") or None
    return LiveFilter(unit, query.get("member") or None, cast("StatusFilter | None", status))


def cursor(http: HTTPRequest, name: str) -> int | None:
    text = http.query_params.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise RequestError(f"'{name}' must be a row number; got '{text}'", param=name)
    return int(text)


class Pages:
    """The handlers, bound to the gateway (its pipeline opens in the app's lifespan)."""

    def __init__(self, gateway: Host, web: Web, lab_reports: Path) -> None:
        self.gateway = gateway
        self.web = web
        self.lab_reports = lab_reports
        self._queries: ConsoleQueries | None = None
        self._checks: ChainChecks | None = None
        self._markdown = MarkdownIt("js-default")

    @property
    def pipeline(self) -> Pipeline:
        return self.gateway.ready

    @property
    def queries(self) -> ConsoleQueries:
        ledger = self.pipeline.ledger
        if self._queries is None or self._queries.ledger is not ledger:
            self._queries = ConsoleQueries(ledger)
            self._checks = ChainChecks(ledger)
        return self._queries

    @property
    def checks(self) -> ChainChecks:
        _ = self.queries
        assert self._checks is not None
        return self._checks

    def units(self, viewer: Viewer) -> list[str]:
        return [viewer.unit] if viewer.unit_scope else list(self.gateway.keyring.units)

    # -- Live ---------------------------------------------------------------------------------

    async def live(self, http: HTTPRequest, viewer: Viewer) -> Response:
        where = live_filter(http, viewer)
        page = await self.queries.requests(where, before=cursor(http, "before"), limit=PAGE_ROWS)
        latest = await self.queries.latest_seq()
        return self.web.render(
            "live.html",
            viewer,
            page=page,
            where=where,
            latest=latest,
            units=self.units(viewer),
            members=list(self.pipeline.members),
            stream_query=urlencode({k: v for k, v in vars_of(where).items() if v is not None}),
            paged=cursor(http, "before") is not None,
            base_url=str(http.base_url).rstrip("/"),
        )

    async def stream(self, http: HTTPRequest, viewer: Viewer) -> Response:
        """Server-sent events: each new request as a rendered table row, newest first."""
        where = live_filter(http, viewer)
        resume = http.headers.get("last-event-id") or http.query_params.get("after") or ""
        after = int(resume) if resume.isdigit() else await self.queries.latest_seq()
        rows = self.web.templates.get_template("_rows.html").module

        async def events() -> Any:
            nonlocal after
            while True:
                page = await self.queries.requests(where, after=after, limit=PAGE_ROWS)
                if page.rows:
                    after = page.rows[0].seq
                    html = "".join(str(rows.row(r)) for r in reversed(page.rows))  # type: ignore[attr-defined]
                    yield ServerSentEvent(data=html, event="rows", id=str(after))
                await asyncio.sleep(STREAM_POLL_S)

        return EventSourceResponse(events(), ping=15, headers={"cache-control": "no-store"})

    async def request(self, http: HTTPRequest, viewer: Viewer) -> Response:
        request_id = http.path_params["request_id"]
        row = await self.queries.request(request_id, viewer.unit_scope)
        review = await self.queries.review_of(request_id)
        if viewer.role == "reviewer" and review is None:
            row = None  # a reviewer reads only the requests the queue concerns
        if row is None:
            raise NotFound(f"no request '{request_id}'", param="request_id")
        steps = await self.queries.chain(request_id)
        costs = [s for s in steps if s.kind != "response" and "cost_usd" in s.payload]
        trace = next((str(s.payload["trace_id"]) for s in steps if s.payload.get("trace_id")), None)
        return self.web.render(
            "request.html", viewer, row=row, steps=steps, costs=costs, trace=trace, review=review
        )

    # -- Spend --------------------------------------------------------------------------------

    async def spend(self, http: HTTPRequest, viewer: Viewer) -> Response:
        span = window(http)
        unit = viewer.unit_scope
        cube = await self.queries.spend_cube(span.since, span.width_s, unit)
        by_member, by_unit = cube.totals("member"), cube.totals("unit")
        picked = http.query_params.get("compare") or None
        team = self.pipeline.team
        if picked is not None and picked not in team.member_names:
            raise RequestError(
                f"'compare' must be a member of the team ({', '.join(team.member_names)}); "
                f"got '{picked}'",
                param="compare",
            )
        tiers = self._by_tier(by_member)
        return self.web.render(
            "spend.html",
            viewer,
            window=span.name,
            windows=list(WINDOWS),
            by_member=by_member,
            by_unit=by_unit,
            by_tier=tiers,
            tier_of={name: m.tier for name, m in self.pipeline.members.items()},
            member_shares=[(t.key, t.requests) for t in by_member],
            tier_shares=[(name, n) for name, n, _ in tiers],
            unit_cost_shares=[(t.key, t.nusd) for t in by_unit],
            total=sum(t.requests for t in by_member),
            cost_total=sum(t.nusd for t in by_member),
            over_units=cube.over_time("unit"),
            over_members=cube.over_time("member"),
            over_tiers=cube.over_time({n: m.tier for n, m in self.pipeline.members.items()}),
            savings=savings(team, by_member, picked),
            members=team.member_names,
            picked=picked,
            bars=await limit_bars(
                self.pipeline.spend.limits, self.units(viewer), self.queries, unit
            ),
        )

    def _by_tier(self, by_member: list[Totals]) -> list[tuple[str, int, int]]:
        """(tier, requests, nano-dollars), from the per-member totals and the team's tiers."""
        tiers: dict[str, list[int]] = {}
        for row in by_member:
            member = self.pipeline.members.get(row.key)
            tier = member.tier if member is not None else "-"
            totals = tiers.setdefault(tier, [0, 0])
            totals[0] += row.requests
            totals[1] += row.nusd
        return sorted(((k, n, c) for k, (n, c) in tiers.items()), key=lambda t: -t[2])

    async def spend_csv(self, http: HTTPRequest, viewer: Viewer) -> Response:
        span = window(http)
        by = http.query_params.get("by", "unit")
        if by not in SPEND_GROUPS:
            raise RequestError(
                f"'by' must be one of {', '.join(SPEND_GROUPS)}; got '{by}'", param="by"
            )
        group = "member" if by == "tier" else by
        found = await self.queries.totals(
            cast("Literal['unit', 'member', 'user']", group), span.since, viewer.unit_scope
        )
        rows = [
            SpendRow(t.key, t.requests, t.errors, t.input_tokens, t.output_tokens, t.cost_usd)
            for t in found
        ]
        if by == "tier":
            rows = self._tier_rows(rows)
        name = f"pinfactory-spend-{by}-{span.name}.csv"
        return Response(
            spend_csv(rows, by),
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    def _tier_rows(self, rows: list[SpendRow]) -> list[SpendRow]:
        tiers: dict[str, SpendRow] = {}
        for row in rows:
            member = self.pipeline.members.get(row.key)
            tier = member.tier if member is not None else "-"
            old = tiers.get(tier)
            tiers[tier] = row.__class__(
                tier,
                *(
                    (getattr(old, f) if old else 0) + getattr(row, f)
                    for f in ("requests", "errors", "input_tokens", "output_tokens", "cost_usd")
                ),
            )
        return sorted(tiers.values(), key=lambda r: (-r.cost_usd, r.key))

    # -- Routing and Members ------------------------------------------------------------------

    async def routing(self, http: HTTPRequest, viewer: Viewer) -> Response:
        span = window(http)
        cube = await self.queries.route_cube(span.since, span.width_s)
        return self.web.render(
            "routing.html",
            viewer,
            window=span.name,
            windows=list(WINDOWS),
            over_time=cube.over_time(),
            routes=cube.routes(),
            fallbacks=cube.fallbacks,
            downgrades=cube.downgrades,
            queued=cube.queued,
            router=self.pipeline.router.kind,
        )

    async def try_query(self, http: HTTPRequest, viewer: Viewer) -> Response:
        text = (http.query_params.get("q") or "").strip()
        if not text:
            raise RequestError("type a query to place ('q')", param="q")
        if len(text) > 20_000:
            raise RequestError("'q' is longer than 20,000 characters", param="q")
        request = Request.from_text(text, unit=viewer.unit)
        decision = self.pipeline.decide(request)
        scores = sorted(decision.scores.items(), key=lambda kv: -kv[1])
        return self.web.render(
            "_explain.html", viewer, query=text, decision=decision, scores=scores
        )

    async def members(self, http: HTTPRequest, viewer: Viewer) -> Response:
        span = window(http)
        health = {h.member: h for h in await self.queries.health(span.since)}
        return self.web.render(
            "members.html",
            viewer,
            window=span.name,
            windows=list(WINDOWS),
            members=list(self.pipeline.members.values()),
            health=health,
            retired=sorted(set(health) - set(self.pipeline.members)),
            breakers=await self._breakers(),
            sample=f"{HEALTH_SAMPLE:,}",
        )

    async def _breakers(self) -> dict[str, tuple[str, float]]:
        """Each breaker's state and, when open, the seconds until a probe may go through."""
        found: dict[str, tuple[str, float]] = {}
        for name, breaker in breakers_of(self.pipeline.members).items():
            state, left = await breaker.current()
            found[name] = (state.value, left)
        return found

    # -- Reviews ------------------------------------------------------------------------------

    async def reviews(
        self,
        http: HTTPRequest,
        viewer: Viewer,
        *,
        notice: str | None = None,
        problem: str | None = None,
        status: int = 200,
    ) -> Response:
        unit = viewer.unit_scope
        offset = cursor(http, "offset") or 0
        return self.web.render(
            "reviews.html",
            viewer,
            status,
            pending=await self.queries.reviews(False, unit, PAGE_ROWS),
            waiting=await self.queries.pending_reviews(unit),
            decided=await self.queries.reviews(True, unit, PAGE_ROWS, offset),
            offset=offset,
            page_rows=PAGE_ROWS,
            notice=notice,
            problem=problem,
        )

    async def decide(self, http: HTTPRequest, viewer: Viewer) -> Response:
        """Approve, or override with an edited answer; a second decision is refused, named."""
        review_id = http.path_params["review_id"]
        if not viewer.decides:
            raise ForbiddenError("a unit key reads its reviews; deciding needs a reviewer key")
        form = await http.form()
        action, answer, note = form.get("action"), form.get("answer"), form.get("note")
        note = note.strip() or None if isinstance(note, str) else None
        try:
            if action == "approve":
                await self.pipeline.execute_approved(review_id, viewer.name, note)
            elif action == "override":
                if not isinstance(answer, str) or not answer.strip():
                    raise RequestError("an override needs the edited 'answer'", param="answer")
                await self.pipeline.reviews.override(review_id, viewer.name, answer, note)
            else:
                raise RequestError(
                    f"'action' must be approve or override; got {action!r}", param="action"
                )
        except Conflict:
            done = await self.pipeline.reviews.get(review_id)
            problem = (
                f"Review {review_id} was already decided ({done.status}) by "
                f"{done.reviewer or 'unknown'} at {when(done.decided)} UTC."
            )
            return await self.reviews(http, viewer, problem=problem, status=409)
        except PinfactoryError as exc:
            return await self.reviews(http, viewer, problem=exc.message, status=exc.status)
        verb = "approved" if action == "approve" else "overridden"
        notice = f"Review {review_id} {verb} by {viewer.name}."
        return await self.reviews(http, viewer, notice=notice)

    # -- Audit and Lab ------------------------------------------------------------------------

    async def audit(self, _: HTTPRequest, viewer: Viewer) -> Response:
        head = await self.queries.head_record()
        return self.web.render(
            "audit.html",
            viewer,
            head=head,
            job=self.checks.latest,
            actions=await self.queries.reviews(True, None, 20),
        )

    async def verify(self, _: HTTPRequest, viewer: Viewer) -> Response:
        job = self.checks.start()
        return self.web.render("_verify.html", viewer, job=job)

    async def progress(self, _: HTTPRequest, viewer: Viewer) -> Response:
        return self.web.render("_verify.html", viewer, job=self.checks.latest)

    def _reports(self) -> list[Path]:
        if not self.lab_reports.is_dir():
            return []
        return sorted(
            (p for p in self.lab_reports.iterdir() if (p / "report.md").is_file()),
            key=lambda p: -p.stat().st_mtime,
        )

    async def lab(self, _: HTTPRequest, viewer: Viewer) -> Response:
        return self.web.render(
            "lab.html", viewer, reports=self._reports(), folder=str(self.lab_reports)
        )

    async def lab_report(self, http: HTTPRequest, viewer: Viewer) -> Response:
        name = http.path_params["report"]
        found = {p.name: p for p in self._reports()}
        if name not in found:
            raise NotFound(f"no lab report '{name}' in {self.lab_reports}", param="report")
        text = (found[name] / "report.md").read_text(encoding="utf-8")
        return self.web.render(
            "lab.html",
            viewer,
            reports=list(found.values()),
            report=name,
            html=self._markdown.render(text),
            folder=str(self.lab_reports),
        )

    async def lab_file(self, http: HTTPRequest, _: Viewer) -> Response:
        name, file = http.path_params["report"], http.path_params["file"]
        found = {p.name: p for p in self._reports()}
        folder = found.get(name)
        path = folder / file if folder is not None else None
        if (
            path is None
            or "/" in file
            or file.startswith(".")
            or not file.endswith(REPORT_FILES)
            or not path.is_file()
        ):
            raise NotFound(f"no file '{file}' in lab report '{name}'", param="file")
        return FileResponse(path)


def vars_of(where: LiveFilter) -> dict[str, str | None]:
    return {"unit": where.unit, "member": where.member, "status": where.status}
