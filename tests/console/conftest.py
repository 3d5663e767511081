"""The console's fixtures: one headless Chromium for the session, a team with every role."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from opentelemetry.sdk.trace.export import SpanExporter

from pinfactory.console import ConsoleSettings
from pinfactory.gateway import create_app
from pinfactory.gateway.server import free_port, serve_in_thread
from pinfactory.observe import Observers
from pinfactory.observe.build import build_observers
from pinfactory.observe.config import TracingSpec
from pinfactory.observe.tracing import Tracing
from pinfactory.team import load_team
from tests.ledger.conftest import location, pg_location  # noqa: F401  (the ledger fixtures)

ADMIN, REVIEWER = "sk-console-admin-01", "sk-console-review-02"
SALES, SUPPORT, GONE = "sk-console-sales-03", "sk-console-support-04", "sk-console-gone-05"
SECRET = "console-test-secret"
# the calculator answers 84; the request's own document says 48: the verifier doubts it
PUZZLE = [{"title": "puzzle", "text": "The answer to twelve times seven is 48 in this puzzle."}]


def team_text(ledger: Path) -> str:
    """Every role's key; ``remote`` calls a port nothing listens on, so its breaker opens."""
    dead_port = free_port()
    return f"""
name: console
members:
  - {{name: calc, kind: calculator, tier: tool, price: {{per_call: 0.01}}}}
  - {{name: docs, kind: retrieval, tier: frontier, price: {{per_call: 0.05}}}}
  - name: remote
    kind: openai_http
    tier: frontier
    timeout_s: 5
    settings:
      base_url: "http://127.0.0.1:{dead_port}/v1"
      model: m
      upstream: {{retries: 0, breaker: {{failures: 1, window_s: 60, cooldown_s: 600}}}}
routing: {{kind: rules, fallback: calc}}
verification:
  min_confidence: 0.6
  on_low_confidence: review
reviews: {{mode: wait, timeout_s: 180}}  # a person's time: generous on a busy machine
budgets:
  - {{unit: sales, period: day, max_spend_usd: 1.00, on_exhausted: refuse}}
keys:
  - {{key: {ADMIN}, unit: ops, user: carol, admin: true}}
  - {{key: {REVIEWER}, unit: ops, user: rita, reviewer: true}}
  - {{key: {SALES}, unit: sales, user: alice}}
  - {{key: {SUPPORT}, unit: support, user: bob}}
  - {{key: {GONE}, unit: support, user: old, revoked: true}}
ledger: {{path: '{ledger}'}}
"""


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium (scripts/chromium.sh installs it); CI fails rather than skips."""
    found = os.environ.get("PINFACTORY_CHROMIUM") or shutil.which("chromium") or ""
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: scripts/test.sh installs it (scripts/chromium.sh)")
        pytest.skip("chromium is not installed (bash scripts/chromium.sh)")
    return found


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium, launched from the system executable, for the browser module.

    Module scope, not session: sync Playwright keeps an event loop running in the main
    thread while it is open, which async tests elsewhere in the suite cannot share.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page screenshots go: a tmp dir, or PINFACTORY_CONSOLE_SCREENSHOTS (docs/console)."""
    target = os.environ.get("PINFACTORY_CONSOLE_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serve_console(tmp: Path, spans: SpanExporter | None = None) -> Any:
    """A console gateway on loopback; ``spans`` receives its traces when given."""
    ledger = tmp / "ledger.db"
    path = tmp / "console.yaml"
    path.write_text(team_text(ledger))
    reports = tmp / "lab-reports"
    reports.mkdir(exist_ok=True)
    settings = ConsoleSettings(secret=SECRET, lab_reports=str(reports))
    team = load_team(path, {})
    observers = build_observers(team)
    if spans is not None:
        tracing = Tracing(TracingSpec(), team=team.name, exporter=spans)
        observers = Observers([*observers.all, tracing])
    return serve_in_thread(create_app(team, console=settings, observers=observers))


def ask(url: str, key: str, question: str, model: str = "auto", **extra: Any) -> tuple[str, str]:
    """(request id, content) of one chat completion through the openai SDK."""
    with OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=240) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": question}], extra_body=extra
        )
        reply = raw.parse()
    return raw.headers["x-request-id"], reply.choices[0].message.content or ""


def login(context: Any, url: str, key: str) -> Any:
    """A page of ``context`` logged in with ``key`` (through the login form)."""
    page = context.new_page()
    page.goto(f"{url}/ui/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def session_cookie(url: str, key: str) -> str:
    """The ``cookie`` header of a session for ``key``, logged in through the form over HTTP.

    The cookie is ``Secure``, so a plain-HTTP client never sends it back on its own:
    tests pass it as a header, which is what a browser on loopback does.
    """
    with httpx.Client(base_url=url) as client:
        form = client.get("/ui/login")
        token = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        login_cookie = form.headers["set-cookie"].split(";", 1)[0]
        done = client.post(
            "/ui/login", data={"key": key, "csrf": token}, headers={"cookie": login_cookie}
        )
        assert done.status_code == 303, done.text
        cookies = [c for c in done.headers.get_list("set-cookie") if c.startswith("pf_console=")]
        return cookies[0].split(";", 1)[0]
