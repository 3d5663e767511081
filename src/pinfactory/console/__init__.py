"""The web console, served by the gateway under ``/ui``.

Server-rendered Jinja2 pages with HTMX for partial updates and uPlot for
charts (both vendored under ``static/vendor`` with their licences; no CDN).
``console_routes`` gives the gateway one :class:`~starlette.routing.Mount`:

    /ui/login, /ui/logout           key -> signed, HTTP-only session cookie
    /ui/live, /ui/live/stream       recent requests; new ones over server-sent events
    /ui/requests/{id}               one request's decision chain, costs, trace id
    /ui/spend, /ui/spend.csv        cost over time, shares, savings, budget and quota bars
    /ui/routing, /ui/routing/try    decisions over time; where a query would go and why
    /ui/members                     error rate, p50/p95 latency, last error per member
    /ui/reviews, POST /ui/reviews/{id}  the queue; approve or override
    /ui/audit, POST /ui/audit/verify    verify the chain with progress
    /ui/lab, /ui/lab/{report}/      the lab's reports
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request as HTTPRequest
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pinfactory.console.pages import Host, Pages
from pinfactory.console.session import (
    LOGIN_COOKIE,
    PAGES,
    SESSION_COOKIE,
    ConsoleSettings,
    SessionError,
    Sessions,
    Viewer,
)
from pinfactory.console.web import PREFIX, Web
from pinfactory.errors import AuthError

__all__ = ["ConsoleSettings", "console_routes"]


class Login:
    """The login form (with its own CSRF token) and logout."""

    def __init__(self, web: Web) -> None:
        self.web = web
        self.sessions = web.sessions

    def form(self, http: HTTPRequest, why: str | None = None, status: int = 200) -> Response:
        token, cookie = self.sessions.login_token()
        response = self.web.render(
            "login.html",
            None,
            status,
            csrf=token,
            why=why if why is not None else http.query_params.get("why"),
            next=_local(http.query_params.get("next")),
            open=self.sessions.keyring.open,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            cookie,
            max_age=3600,
            path=PREFIX,
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    async def show(self, http: HTTPRequest) -> Response:
        try:
            viewer = self.sessions.read(http.cookies.get(SESSION_COOKIE))
        except SessionError:
            return self.form(http)
        return RedirectResponse(home(viewer), status_code=303)

    async def submit(self, http: HTTPRequest) -> Response:
        form = await http.form()
        key, token = form.get("key"), form.get("csrf")
        if not self.sessions.login_token_ok(
            http.cookies.get(LOGIN_COOKIE), token if isinstance(token, str) else None
        ):
            return self.form(http, "the login form expired: try again", 403)
        try:
            viewer, cookie = self.sessions.login(key if isinstance(key, str) else "")
        except AuthError as exc:
            return self.form(http, exc.message, 401)
        target = _local(str(form.get("next") or "")) or home(viewer)
        response = RedirectResponse(target, status_code=303)
        self.web.set_session(response, cookie)
        return response

    async def logout(self, _http: HTTPRequest, _viewer: Viewer) -> Response:
        response = RedirectResponse(f"{PREFIX}/login?why={quote('logged out')}", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response


def home(viewer: Viewer) -> str:
    return f"{PREFIX}/{PAGES[viewer.role][0]}"


def _local(target: str | None) -> str:
    """A redirect target inside the console only (never another site)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return ""


def console_routes(gateway: Host, settings: ConsoleSettings | None = None) -> Mount:
    """The console's routes under ``/ui`` for one gateway."""
    settings = settings or ConsoleSettings.from_environ()
    web = Web(Sessions(gateway.keyring, settings))
    pages = Pages(gateway, web, Path(settings.lab_reports))
    login = Login(web)
    guard = web.guarded

    async def index(http: HTTPRequest) -> Response:
        try:
            viewer = web.sessions.read(http.cookies.get(SESSION_COOKIE))
        except SessionError as exc:
            return web.login_redirect(http, exc.message)
        return RedirectResponse(home(viewer), status_code=303)

    async def no_page(http: HTTPRequest, viewer: Viewer) -> Response:
        return web.render("error.html", viewer, 404, error=None, path=http.url.path)

    static = StaticFiles(packages=[("pinfactory.console", "static")])
    routes = [
        Route("/", index),
        Route("/login", login.show, methods=["GET"]),
        Route("/login", login.submit, methods=["POST"]),
        Route("/logout", guard(None, login.logout), methods=["POST"]),
        Route("/live", guard("live", pages.live)),
        Route("/live/stream", guard("live", pages.stream)),
        Route("/requests/{request_id}", guard(None, pages.request)),
        Route("/spend", guard("spend", pages.spend)),
        Route("/spend.csv", guard("spend", pages.spend_csv)),
        Route("/routing", guard("routing", pages.routing)),
        Route("/routing/try", guard("routing", pages.try_query)),
        Route("/members", guard("members", pages.members)),
        Route("/reviews", guard("reviews", pages.reviews)),
        Route("/reviews/{review_id}", guard("reviews", pages.decide), methods=["POST"]),
        Route("/audit", guard("audit", pages.audit)),
        Route("/audit/verify", guard("audit", pages.verify), methods=["POST"]),
        Route("/audit/progress", guard("audit", pages.progress)),
        Route("/lab", guard("lab", pages.lab)),
        Route("/lab/{report}/", guard("lab", pages.lab_report)),
        Route("/lab/{report}/{file}", guard("lab", pages.lab_file)),
        Mount("/static", static, name="static"),
        Route("/{path:path}", guard(None, no_page)),
    ]
    return Mount(PREFIX, routes=routes)
