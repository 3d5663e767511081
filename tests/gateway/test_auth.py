"""API keys map callers to business units; bad keys are refused and recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import hash_key, parse_team
from tests.conftest import ledger_rows

TEAM = f"""\
name: keyed
members:
  - name: calculator
    kind: calculator
    price: {{per_call: 0.01}}
routing: {{kind: rules, fallback: calculator}}
keys:
  - {{key: sk-sales-0001, unit: sales, user: alice}}
  - {{key_sha256: {hash_key("sk-support-0002")}, unit: support}}
"""


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ledger = tmp_path_factory.mktemp("keyed") / "ledger.db"
    team = parse_team(TEAM, "keyed.yaml", {"PINFACTORY_LEDGER": str(ledger)})
    with serve_in_thread(create_app(team)) as url:
        yield url, ledger


def ask(url: str, key: str) -> str:
    with OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "2+2"}]
        )
    return str((reply.model_extra or {})["pinfactory"]["unit"])


def test_keys_map_to_units(keyed: tuple[str, Path]) -> None:
    url, ledger = keyed
    assert ask(url, "sk-sales-0001") == "sales"
    assert ask(url, "sk-support-0002") == "support"
    units = [(r["unit"], r["user"]) for r in ledger_rows(ledger, "status = 200")]
    assert ("sales", "alice") in units
    assert ("support", "") in units


def test_bad_key_is_refused_with_401_and_recorded(keyed: tuple[str, Path]) -> None:
    url, ledger = keyed
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        ask(url, "sk-wrong-9999")
    rows = ledger_rows(ledger, "status = 401")
    assert rows and rows[-1]["error"].startswith("invalid_api_key")


def test_missing_key_is_refused(keyed: tuple[str, Path]) -> None:
    url, _ = keyed
    response = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "1+1"}]},
    )
    assert response.status_code == 401
    assert "missing API key" in response.json()["error"]["message"]


def test_models_needs_a_key_too(keyed: tuple[str, Path]) -> None:
    url, _ = keyed
    assert httpx.get(url + "/v1/models").status_code == 401
    ok = httpx.get(url + "/v1/models", headers={"authorization": "Bearer sk-sales-0001"})
    assert [m["id"] for m in ok.json()["data"]] == ["auto", "calculator"]
