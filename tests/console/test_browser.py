"""The console in real headless Chromium against gateways on loopback.

One browser for the module. One gateway with an empty ledger, whose pages must say
what would be there; one gateway (calculator + retrieval members, a verifier that sends doubtful
answers to a person and makes the client wait, a daily budget for the sales
unit) and one browser for the module; requests go through the openai SDK.
Each page is screenshot into a test artefact folder.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.console.conftest import (
    ADMIN,
    GONE,
    PUZZLE,
    REVIEWER,
    SALES,
    SUPPORT,
    ask,
    login,
    serve_console,
    session_cookie,
)

pytestmark = pytest.mark.slow
WAIT_S = 200  # how long a test waits for a held client (more than the review's own timeout)


# a 1x1 PNG: the lab report's plot
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The console gateway's traces."""
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, spans: InMemorySpanExporter) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("console")
    report = tmp / "lab-reports" / "clinc-demo"
    report.mkdir(parents=True)
    (report / "report.md").write_text(
        "# CLINC150: rules vs learned\n\n| router | accuracy |\n|---|---|\n"
        "| hybrid | 0.759 |\n\n![curves](curves.png)\n<script>alert(1)</script>\n"
    )
    (report / "curves.png").write_bytes(PIXEL)
    with serve_console(tmp, spans) as served:
        yield served


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    made = browser.new_context(viewport={"width": 1360, "height": 900})
    yield made
    made.close()


def shoot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


class Waiting(threading.Thread):
    """A client blocked on a request the verifier sent for review (wait mode)."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.result: tuple[str, str] | None = None

    def run(self) -> None:
        self.result = ask(self.url, self.key, "What is 12 * 7?", documents=PUZZLE)


def pending_card(page: Any) -> Any:
    page.wait_for_selector("article.review", timeout=120_000)  # verified first: slow when busy
    return page.locator("article.review").first


def override(page: Any, card: Any, answer: str) -> None:
    """Override the review on ``card`` with ``answer`` and wait for the confirmation."""
    card.locator("summary:text('Override')").click()
    card.locator("textarea[name=answer]").fill(answer)
    card.locator("button[name=override]").click()
    page.wait_for_selector(".notice.good")


def test_unauthenticated_browser_gets_the_login_page_and_no_data(
    url: str, context: Any, screenshots: Path
) -> None:
    request_id, _ = ask(url, SALES, "What is 6 * 7?")
    page = context.new_page()
    for path in ("/ui/live", f"/ui/requests/{request_id}", "/ui/spend", "/ui/reviews"):
        page.goto(url + path)
        assert "/ui/login" in page.url
        assert page.locator("#key").is_visible()
        main = page.locator("main").inner_text()  # the id is only in the URL it asked for
        assert request_id not in main and "sales" not in main and "calc" not in main
        assert page.locator("table").count() == 0
    shoot(page, screenshots, "login")


@pytest.mark.parametrize(
    ("key", "message"),
    [("sk-not-a-key-at-all", "invalid API key"), (GONE, "API key revoked")],
)
def test_a_wrong_or_revoked_key_is_refused_by_name(
    url: str, context: Any, key: str, message: str
) -> None:
    page = login(context, url, key)
    assert "/ui/login" in page.url
    assert message in page.locator("[role=alert]").inner_text()
    assert not context.cookies() or all(c["name"] != "pf_console" for c in context.cookies())


def test_session_cookie_is_secure_http_only_and_a_tampered_one_logs_out(
    url: str, context: Any
) -> None:
    page = login(context, url, ADMIN)
    assert page.url.endswith("/ui/live")
    cookie = next(c for c in context.cookies() if c["name"] == "pf_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert ADMIN not in cookie["value"]
    context.add_cookies([{**cookie, "value": cookie["value"][:-4] + "AAAA"}])
    page.goto(f"{url}/ui/spend")
    assert "/ui/login" in page.url
    assert "session cookie is not valid" in page.locator("[role=alert]").inner_text()


def server_spans(spans: InMemorySpanExporter, request_id: str) -> list[Any]:
    """The request's finished server spans. Observers are told after the response has
    left (``pinfactory.deferred``), so the client can hold its answer a moment before the
    server's thread exports the span: wait for it (up to 30 s, then whatever is there)."""
    deadline = time.monotonic() + 30
    while True:
        found = [
            s for s in spans.get_finished_spans()
            if (s.attributes or {}).get("pinfactory.request_id") == request_id
        ]  # fmt: skip
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_sdk_requests_appear_on_live_and_open_their_decision_chain(
    url: str, context: Any, screenshots: Path, spans: InMemorySpanExporter
) -> None:
    page = login(context, url, ADMIN)
    page.wait_for_selector("#live-state.pulse:not(.off)")
    with openai.OpenAI(base_url=url + "/v1", api_key=SALES, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "What is 12 * 7?"}]
        )
    request_id, reply = raw.headers["x-request-id"], raw.parse()
    assert "84" in (reply.choices[0].message.content or "")
    block = (reply.model_extra or {})["pinfactory"]
    (server_span,) = server_spans(spans, request_id)  # as the exporter received it
    assert server_span.context is not None
    trace_id = format(server_span.context.trace_id, "032x")
    assert block["trace_id"] == trace_id
    row = page.locator(f"#live-rows tr:has(a:text('{request_id[:18]}'))")
    row.wait_for(timeout=5_000)  # streamed in, no reload
    assert "calc" in row.inner_text() and "sales" in row.inner_text()
    shoot(page, screenshots, "live")
    row.locator("a").first.click()
    page.wait_for_selector("ol.chain")
    chain = page.locator("ol.chain").inner_text()
    for kind in ("request", "decision", "call", "response"):
        assert kind in chain
    assert "$0.010000" in page.locator("table.grid").first.inner_text()
    shown = page.locator(".card.stat:has(.label:text('trace id')) .value").inner_text()
    assert shown.strip() == trace_id  # sealed with the row, before the spans existed
    shoot(page, screenshots, "request")


def test_a_review_approved_in_the_browser_releases_the_waiting_client(
    url: str, context: Any, screenshots: Path
) -> None:
    client = Waiting(url, SUPPORT)
    client.start()
    page = login(context, url, REVIEWER)
    assert page.url.endswith("/ui/reviews")
    card = pending_card(page)
    assert "48 in this puzzle" in card.inner_text()
    shoot(page, screenshots, "reviews")
    card.locator("button[name=approve]").click()
    page.wait_for_selector(".notice.good")
    client.join(timeout=WAIT_S)
    assert client.result is not None
    assert "84" in client.result[1]  # the member's answer, released by the approval
    assert "approved by rita" in page.locator(".notice.good").inner_text()


def test_a_second_decision_from_another_tab_is_told_who_decided(url: str, context: Any) -> None:
    client = Waiting(url, SUPPORT)
    client.start()
    first = login(context, url, REVIEWER)
    second = context.new_page()
    second.goto(f"{url}/ui/reviews")
    card_one, card_two = pending_card(first), pending_card(second)
    override(first, card_one, "Twelve times seven is 84 (checked by hand).")
    card_two.locator("button[name=approve]").click()
    second.wait_for_selector(".notice.problem")
    assert re.search(
        r"already decided \(overridden\) by rita at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
        second.locator(".notice.problem").inner_text(),
    )
    client.join(timeout=WAIT_S)
    assert client.result is not None and "checked by hand" in client.result[1]


def test_an_override_is_visible_in_the_audit_view(
    url: str, context: Any, screenshots: Path
) -> None:
    client = Waiting(url, SUPPORT)
    client.start()
    reviewer = login(context, url, REVIEWER)
    override(reviewer, pending_card(reviewer), "It is 84; the puzzle text is wrong.")
    client.join(timeout=WAIT_S)
    assert client.result is not None
    admin = context.browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        page = login(admin, url, ADMIN)
        page.goto(f"{url}/ui/audit")
        row = page.locator("table.grid tr:has-text('the puzzle text is wrong')")
        assert "overridden" in row.inner_text() and "rita" in row.inner_text()
        page.click("button:text('Verify the chain now')")
        page.wait_for_selector("#verify .ok-text", timeout=15_000)
        assert "last verified entry" in page.locator("#verify").inner_text()
        shoot(page, screenshots, "audit")
        row.locator("a").click()
        page.wait_for_selector("li.k-review-overridden")
        step = page.locator("li.k-review-overridden").inner_text()
        assert "rita" in step and "the puzzle text is wrong" in step
    finally:
        admin.close()


def test_a_units_budget_bar_moves_after_spending(url: str, context: Any) -> None:
    page = login(context, url, SALES)
    page.goto(f"{url}/ui/spend")
    bar = page.locator(".bar-row[data-limit='budget:sales/day:sales']")
    before = bar.locator(".used").inner_text()
    width_before = bar.locator(".meter span").evaluate("e => e.getBoundingClientRect().width")
    ask(url, SALES, "What is 7 * 7?")
    page.reload()
    after = bar.locator(".used").inner_text()
    width_after = bar.locator(".meter span").evaluate("e => e.getBoundingClientRect().width")
    assert float(after.strip("$")) == pytest.approx(float(before.strip("$")) + 0.01)
    assert width_after > width_before
    assert "support" not in page.locator("main").inner_text()  # its own unit only


def test_a_unit_key_cannot_reach_another_units_request_by_url(url: str, context: Any) -> None:
    theirs, _ = ask(url, SUPPORT, "What is 3 * 3?")
    mine, _ = ask(url, SALES, "What is 4 * 4?")
    page = login(context, url, SALES)
    for request_id in (theirs, "req-does-not-exist"):
        response = page.goto(f"{url}/ui/requests/{request_id}")
        assert response is not None and response.status == 404
        assert f"no request '{request_id}'" in page.locator(".notice.problem").inner_text()
    response = page.goto(f"{url}/ui/requests/{mine}")
    assert response is not None and response.status == 200
    response = page.goto(f"{url}/ui/audit")
    assert response is not None and response.status == 403
    page.goto(f"{url}/ui/live")
    assert theirs[:18] not in page.content() and mine[:18] in page.content()


def test_state_changing_posts_need_the_csrf_token(url: str) -> None:
    reviewer, admin = session_cookie(url, REVIEWER), session_cookie(url, ADMIN)
    for cookie, path, data in (
        (reviewer, "/ui/reviews/rev_x", {"action": "approve"}),
        (reviewer, "/ui/reviews/rev_x", {"action": "approve", "csrf": "forged"}),
        (admin, "/ui/audit/verify", {}),
        (admin, "/ui/logout", {}),
    ):
        response = httpx.post(url + path, data=data, headers={"cookie": cookie})
        assert response.status_code == 403, path
        assert "CSRF token is missing or stale" in response.text


def test_admin_pages_render_with_data(url: str, context: Any, screenshots: Path) -> None:
    ask(url, SALES, "What is 2 + 2?")
    with pytest.raises(openai.APIStatusError):  # nothing listens: 502, and its breaker opens
        ask(url, SALES, "Hello?", model="remote")
    page = login(context, url, ADMIN)
    for name, marker in (
        ("spend", "Cost over time by unit"),
        ("routing", "Decisions over time by router"),
        ("members", "p95"),
    ):
        response = page.goto(f"{url}/ui/{name}")
        assert response is not None and response.status == 200
        assert marker in page.locator("main").inner_text()
        if name != "members":
            page.wait_for_selector(".chart .uplot")  # the vendored chart library drew it
        else:
            remote = page.locator("tr:has(b:text-is('remote'))").inner_text()
            assert "open" in remote and "probe in" in remote and "100.0%" in remote
        shoot(page, screenshots, name)
    page.goto(f"{url}/ui/lab")
    page.click("a:text('clinc-demo')")
    page.wait_for_selector("article.report table")
    assert "0.759" in page.locator("article.report").inner_text()
    assert page.locator("article.report img").evaluate("img => img.naturalWidth") == 1
    assert page.locator("article.report script").count() == 0  # the report's HTML is text
    shoot(page, screenshots, "lab")
    page.goto(f"{url}/ui/routing")
    page.fill("input[name=q]", "What is 12 * 7?")
    page.click("button:text('Where would it go?')")
    page.wait_for_selector(".explain")
    assert "calc" in page.locator(".explain").inner_text()
    csv = httpx.get(
        f"{url}/ui/spend.csv?by=tier&window=24h",
        headers={"cookie": session_cookie(url, ADMIN)},
    )
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith("tier,requests")
    assert any(line.startswith("tool,") for line in csv.text.splitlines())


EMPTY = {
    "live": "No requests yet",
    "spend": "Nothing spent in the last 24h",
    "routing": "No routed requests in the last 24h",
    "members": "none in 24h",
    "reviews": "The queue is empty",
    "audit": "the chain is empty",
    "lab": "No lab reports yet",
}


def test_an_empty_ledger_renders_helpful_empty_states(
    tmp_path: Path, context: Any, screenshots: Path
) -> None:
    with serve_console(tmp_path) as url:
        page = login(context, url, ADMIN)
        for name, message in EMPTY.items():
            response = page.goto(f"{url}/ui/{name}")
            assert response is not None and response.status == 200, name
            assert message in page.locator("main").inner_text(), name
            shoot(page, screenshots, f"empty-{name}")
        page.goto(f"{url}/ui/live")
        assert f'base_url="{url}/v1"' in page.locator(".empty pre").inner_text()
        page.close()  # its event stream, before the gateway stops
