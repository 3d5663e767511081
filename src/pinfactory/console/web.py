"""What every console handler shares: templates, the viewer of a request, CSRF, errors.

:func:`guarded` wraps a handler with the session check (no session: the
login page, and no data), the page's role check, the CSRF check of a POST
and the rendering of pinfactory errors as an HTML page with their status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request as HTTPRequest
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pinfactory.console.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Page,
    SessionError,
    Sessions,
    Viewer,
)
from pinfactory.errors import ForbiddenError, PinfactoryError

Handler = Callable[[HTTPRequest, Viewer], Awaitable[Response]]
PREFIX = "/ui"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
NAV: tuple[tuple[Page, str], ...] = (
    ("live", "Live"),
    ("spend", "Spend"),
    ("routing", "Routing"),
    ("members", "Members"),
    ("reviews", "Reviews"),
    ("audit", "Audit"),
    ("lab", "Lab"),
)


def money(value: Decimal | float | int | str | None, digits: int = 6) -> str:
    """Dollars with enough digits for a cheap call: ``$0.000123``."""
    if value is None:
        return "-"
    try:
        return f"${Decimal(str(value)):,.{digits}f}"
    except (InvalidOperation, ValueError):
        return str(value)  # an audit payload's own text, shown as it is


def when(epoch: float | None) -> str:
    """Epoch seconds as a UTC time: ``2026-05-01 12:00:05``."""
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def build_templates() -> Environment:
    env = Environment(
        loader=PackageLoader("pinfactory.console", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, when=when)
    env.globals.update(nav=NAV, prefix=PREFIX)
    return env


class Web:
    """Renders pages and resolves the viewer of each request."""

    def __init__(self, sessions: Sessions, templates: Environment | None = None) -> None:
        self.sessions = sessions
        self.templates = templates or build_templates()

    def render(
        self, name: str, viewer: Viewer | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        html = self.templates.get_template(name).render(viewer=viewer, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error(self, viewer: Viewer | None, exc: PinfactoryError) -> HTMLResponse:
        return self.render("error.html", viewer, exc.status, error=exc)

    def login_redirect(self, http: HTTPRequest, why: str) -> Response:
        target = http.url.path + (f"?{http.url.query}" if http.url.query else "")
        response = RedirectResponse(
            f"{PREFIX}/login?next={quote(target)}&why={quote(why)}", status_code=303
        )
        if http.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    def guarded(self, page: Page | None, handler: Handler) -> Callable[[HTTPRequest], Any]:
        """``handler`` behind the session, role and (for POST) CSRF checks."""

        async def endpoint(http: HTTPRequest) -> Response:
            try:
                viewer = self.sessions.read(http.cookies.get(SESSION_COOKIE))
            except SessionError as exc:
                if http.headers.get("accept", "").startswith("text/event-stream") or (
                    http.headers.get("hx-request")
                ):
                    return Response(exc.message, status_code=401, headers=SECURITY_HEADERS)
                return self.login_redirect(http, exc.message)
            try:
                if page is not None and not viewer.may(page):
                    raise ForbiddenError(f"a {viewer.role} key does not open the {page} page")
                if http.method == "POST":
                    await self.check_csrf(http, viewer)
                return await handler(http, viewer)
            except PinfactoryError as exc:
                return self.error(viewer, exc)

        return endpoint

    @staticmethod
    async def check_csrf(http: HTTPRequest, viewer: Viewer) -> None:
        token = http.headers.get("x-csrf-token")
        if token is None:
            form = await http.form()
            value = form.get("csrf")
            token = value if isinstance(value, str) else None
        if not viewer.csrf_ok(token):
            raise ForbiddenError(
                "the form's CSRF token is missing or stale: reload the page and try again",
                param="csrf",
            )

    def set_session(self, response: Response, cookie: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=self.sessions.settings.ttl_s,
            path=PREFIX,
            secure=True,
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
