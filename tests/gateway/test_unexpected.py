"""A member that breaks in a way nobody anticipated: a 500 error object, never a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.members import Completion, Member
from pinfactory.request import Request
from pinfactory.team import parse_team
from tests.conftest import ledger_rows


class BrokenMember(Member):
    """Fails with an error outside pinfactory's tree, as a buggy plug-in would."""

    kind = "broken"

    async def complete(self, request: Request) -> Completion:
        raise RuntimeError(f"plug-in bug on {request.request_id}")


def test_unexpected_errors_are_500_objects_and_recorded(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    team = parse_team(
        "members: [{name: bug, kind: 'tests.gateway.test_unexpected:BrokenMember'}]\n"
        "routing: {kind: rules, fallback: bug}\n",
        "bug.yaml",
        {"PINFACTORY_LEDGER": str(ledger)},
    )
    hi = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    with serve_in_thread(create_app(team)) as url, httpx.Client(base_url=url) as client:
        plain = client.post("/v1/chat/completions", json=hi)
        streamed = client.post("/v1/chat/completions", json={**hi, "stream": True})
    for response in (plain, streamed):
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["message"].startswith("internal error (RuntimeError); request id req_")
        assert "Traceback" not in response.text
    assert [r["status"] for r in ledger_rows(ledger)] == [500, 500]


class StuckMember(Member):
    """A tool that never answers: the member's timeout must still apply."""

    kind = "stuck"

    async def complete(self, request: Request) -> Completion:
        await asyncio.sleep(60)
        return self.local_completion(request, "too late", model="stuck")


def test_every_member_kind_honours_its_timeout(tmp_path: Path) -> None:
    team = parse_team(
        "members: [{name: stuck, kind: 'tests.gateway.test_unexpected:StuckMember',"
        " timeout_s: 0.2}]\n"
        "routing: {kind: rules, fallback: stuck}\n",
        "stuck.yaml",
        {"PINFACTORY_LEDGER": str(tmp_path / "ledger.db")},
    )
    with serve_in_thread(create_app(team)) as url, httpx.Client(base_url=url) as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 504
    assert response.json()["error"]["message"] == (
        "member 'stuck': no answer within 0.2s (the member's timeout_s)"
    )
