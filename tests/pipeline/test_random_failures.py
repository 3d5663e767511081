"""Property: whatever fails, and wherever, a request leaves exactly one ledger row, the
chain (rows included) verifies, and the row's cost is the sum of its sealed calls.

Hypothesis draws the failure point (none, an unknown model before routing, a member
before its first token, a member mid-stream, a verifier, the ledger refusing the row,
the client leaving mid-stream), streaming or not, on a team with a cross-check and on
one without verification. Requests go through the real gateway over loopback (httpx:
a client that leaves halfway must be able to).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinfactory.errors import LedgerError
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.ledger import AuditEvent, LedgerEntry, SQLiteLedger
from pinfactory.ledger.base import to_nano
from pinfactory.ledger.chain import payload, verify_ledger
from pinfactory.members import Completion, Member
from pinfactory.members.base import Usage
from pinfactory.request import Document, Request
from pinfactory.team import parse_team
from pinfactory.verify.base import Verdict

POINTS = ("none", "unknown-model", "before", "mid", "verifier", "ledger", "leave")


class ScriptedMember(Member):
    """Answers 40 words, one a delta; ``fail:before`` / ``fail:mid`` in the prompt break it."""

    kind = "scripted"

    async def complete(self, request: Request) -> Completion:
        if "fail:before" in request.text or "fail:mid" in request.text:
            raise RuntimeError("scripted failure")
        return self._done(request, "word " * 40)

    async def stream(self, request: Request) -> AsyncIterator[str | Completion]:
        if "fail:before" in request.text:
            raise RuntimeError("scripted failure before the first token")
        for index in range(40):
            if index == 3 and "fail:mid" in request.text:
                raise RuntimeError("scripted failure mid-stream")
            yield "word "
            await asyncio.sleep(0.005)
        yield self._done(request, "word " * 40)

    def _done(self, request: Request, text: str) -> Completion:
        usage = Usage(request.prompt_tokens, 40)
        return Completion(text, usage, self.price.cost(usage), model="scripted")


class FussyVerifier:
    """A plug-in verifier that raises on ``fail:verifier``."""

    name = "fussy"

    def check(self, request: Request, *_: Completion | Sequence[Document]) -> Verdict:
        if "fail:verifier" in request.text:
            raise RuntimeError("verifier bug")
        return Verdict(0.9, "supported", self.name)


class RefusingLedger(SQLiteLedger):
    """Refuses the row of an answered request asked by user ``ledger-breaker``."""

    async def record(self, entry: LedgerEntry, events: Sequence[AuditEvent] = ()) -> None:
        if entry.user == "ledger-breaker" and entry.status == 200:
            raise LedgerError("disk full (scripted)")
        await super().record(entry, events)


MEMBERS = """
members:
  - name: main
    kind: 'tests.pipeline.test_random_failures:ScriptedMember'
    price: {per_call: 0.002, output_per_mtok: 1000}
  - name: second
    kind: 'tests.pipeline.test_random_failures:ScriptedMember'
    price: {per_call: 0.01}
routing: {kind: rules, fallback: main}
"""


@dataclass
class Served:
    url: str
    ledger: Path


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, Served]]:
    folder = tmp_path_factory.mktemp("random")
    verified = (
        "verification: {verifiers: [grounding, "
        "'tests.pipeline.test_random_failures:FussyVerifier'],"
        " only_with_evidence: false, cross_check: second}\n"
    )
    served: dict[bool, Served] = {}
    with_verify = folder / "verified.db"
    plain = folder / "plain.db"
    teams = {
        True: parse_team(MEMBERS + verified + f"ledger: {{path: '{with_verify}'}}\n", "v.yaml", {}),
        False: parse_team(MEMBERS + f"ledger: {{path: '{plain}'}}\n", "p.yaml", {}),
    }
    apps = {
        k: create_app(t, ledger=RefusingLedger(str(t.ledger_location))) for k, t in teams.items()
    }
    with serve_in_thread(apps[True]) as one, serve_in_thread(apps[False]) as two:
        served[True] = Served(one, with_verify)
        served[False] = Served(two, plain)
        yield served


def row_count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    finally:
        db.close()


def last_row(path: Path) -> dict[str, Any]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return dict(db.execute("SELECT * FROM requests ORDER BY seq DESC LIMIT 1").fetchone())
    finally:
        db.close()


async def check_ledger(path: Path, request_id: str) -> tuple[bool, int]:
    """(chain and rows verify, the sum of the request's sealed call costs in nano-USD)."""
    ledger = SQLiteLedger(str(path))
    await ledger.open()
    try:
        report = await verify_ledger(ledger)
        calls = [payload(r) for r in await ledger.audit(request_id) if r.kind == "call"]
    finally:
        await ledger.close()
    return report.intact, sum(to_nano(Decimal(c["cost_usd"])) for c in calls)


def send(url: str, point: str, stream: bool) -> int:
    body: dict[str, Any] = {
        "model": "nobody" if point == "unknown-model" else "auto",
        "messages": [{"role": "user", "content": f"tell me something fail:{point}"}],
        "stream": stream,
        "user": "ledger-breaker" if point == "ledger" else "tester",
    }
    with httpx.Client(base_url=url, timeout=30) as client:
        if not stream:
            return client.post("/v1/chat/completions", json=body).status_code
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if point == "leave":
                next(response.iter_lines(), None)
                return 499  # closing here leaves mid-stream
            for _ in response.iter_lines():
                pass
            return response.status_code


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(point=st.sampled_from(POINTS), stream=st.booleans(), verified=st.booleans())
def test_one_row_a_verified_chain_and_spend_equal_to_the_calls(
    gateways: dict[bool, Served], point: str, stream: bool, verified: bool
) -> None:
    served = gateways[verified]
    before = row_count(served.ledger)
    send(served.url, point, stream)
    deadline = time.monotonic() + 10
    while row_count(served.ledger) == before and time.monotonic() < deadline:
        time.sleep(0.02)  # a client that left is recorded in the background
    time.sleep(0.05)
    assert row_count(served.ledger) == before + 1
    row = last_row(served.ledger)
    intact, called = asyncio.run(check_ledger(served.ledger, row["request_id"]))
    assert intact
    assert row["cost_nusd"] == called
    nothing_failed = (
        point == "none"
        or (point == "verifier" and not verified)  # a team without verifiers
        or (point == "leave" and (verified or not stream))  # the answer was whole before
    )
    if nothing_failed:
        assert row["status"] == 200
    elif point == "ledger":
        assert row["status"] == 500 and "ledger" in row["error"]
    elif point == "leave":
        assert row["status"] == 499
    elif point == "unknown-model":
        assert row["status"] == 404
    elif point in ("before", "mid", "verifier"):
        assert row["status"] >= 500
