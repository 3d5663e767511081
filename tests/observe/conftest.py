"""Fixtures for observability: an instant upstream and teams in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import Team, parse_team
from pinfactory.testing.upstreams import instant_upstream, misbehaving_upstream


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with serve_in_thread(instant_upstream()) as url:
        yield url


@pytest.fixture(scope="module")
def broken_url() -> Iterator[str]:
    with serve_in_thread(misbehaving_upstream()) as url:
        yield url


def observed_team(
    tmp_path: Path, upstream: str, broken: str = "", extra: str = "", keys: str = ""
) -> Team:
    """One priced openai_http member on the instant upstream, the calculator, optionally a
    member whose upstream answers HTTP 500."""
    broken_member = (
        "  - name: broken\n"
        "    kind: openai_http\n"
        f"    settings: {{base_url: '{broken}/v1', model: error-500}}\n"
        if broken
        else ""
    )
    text = (
        "name: observed\n"
        "members:\n"
        "  - name: upstream\n"
        "    kind: openai_http\n"
        "    tier: small\n"
        "    price: {input_per_mtok: 2, output_per_mtok: 10}\n"
        f"    settings: {{base_url: '{upstream}/v1', model: instant}}\n"
        "  - name: calculator\n"
        "    kind: calculator\n"
        "    price: {per_call: 0.000001}\n"
        f"{broken_member}"
        "routing:\n"
        "  kind: rules\n"
        "  fallback: upstream\n"
        "  rules:\n"
        "    - name: arithmetic\n"
        "      when: {regex: '\\d\\s*[-+*/]\\s*\\d'}\n"
        "      route: calculator\n"
        f"ledger: {{path: '{tmp_path / 'ledger.db'}'}}\n"
        f"{keys}{extra}"
    )
    return parse_team(text, str(tmp_path / "team.yaml"), {})
