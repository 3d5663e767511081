"""One ledger row per request: answered, refused, failed upstream or abandoned."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx

from pinfactory.gateway import create_app
from pinfactory.gateway.server import free_port, serve_in_thread
from pinfactory.team import parse_team
from tests.conftest import ledger_rows


def test_every_request_leaves_exactly_one_row(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    team = parse_team(
        f"""\
name: rows
members:
  - {{name: calculator, kind: calculator}}
  - {{name: gone, kind: openai_http,
      settings: {{base_url: "http://127.0.0.1:{free_port()}/v1", model: x}}}}
routing: {{kind: rules, fallback: calculator}}
gateway: {{max_body_bytes: 2000, max_messages: 3}}
""",
        "rows.yaml",
        {"PINFACTORY_LEDGER": str(ledger)},
    )
    hi = [{"role": "user", "content": "1 + 1"}]
    bodies: list[bytes] = [
        json.dumps({"model": "auto", "messages": hi}).encode(),
        json.dumps({"model": "auto", "messages": hi, "stream": True}).encode(),
        json.dumps({"model": "gone", "messages": hi}).encode(),
        json.dumps({"model": "gone", "messages": hi, "stream": True}).encode(),
        json.dumps({"model": "nobody", "messages": hi}).encode(),
        json.dumps(
            {"model": "auto", "messages": [{"role": "user", "content": "x" * 3000}]}
        ).encode(),
        json.dumps({"model": "auto", "messages": hi * 4}).encode(),
        b"{",
    ]
    with serve_in_thread(create_app(team)) as url, httpx.Client(base_url=url) as client:
        statuses = [client.post("/v1/chat/completions", content=b).status_code for b in bodies]
    assert statuses == [200, 200, 502, 502, 404, 413, 400, 400]
    rows = ledger_rows(ledger)
    assert len(rows) == len(bodies)
    assert Counter(r["status"] for r in rows) == Counter(statuses)
    assert {r["member"] for r in rows if r["status"] == 502} == {"gone"}
    assert all(r["error"] for r in rows if r["status"] >= 400)
    assert any("the limit is 3" in (r["error"] or "") for r in rows)
