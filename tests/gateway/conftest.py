"""A recording upstream and a gateway in front of it, shared by the wire-format tests
(conformance, SDK helpers, embeddings, responses, verified streams)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import parse_team
from pinfactory.testing.recording import RecordingUpstream, completion

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}
"""The tool call the upstream answers with in the tool round-trip tests."""


def tool_answer() -> dict[str, Any]:
    """A fresh ``chat.completion`` body whose one choice calls :data:`CALL`."""
    return completion(
        None,
        choices=[
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [CALL]},
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[RecordingUpstream, str]]:
    """A real recording upstream on loopback, one per test module."""
    recorder = RecordingUpstream()
    with serve_in_thread(recorder.app()) as url:
        yield recorder, url


@pytest.fixture
def recorder(upstream: tuple[RecordingUpstream, str]) -> RecordingUpstream:
    """The module's recording upstream, with nothing recorded or scripted yet."""
    upstream[0].reset()
    return upstream[0]


@contextmanager
def gateway_for(team: str, folder: Path) -> Iterator[tuple[str, Path]]:
    """A real gateway serving the team file text ``team``, its ledger in ``folder``:
    yields its base URL and the ledger's path."""
    ledger = folder / "ledger.db"
    with serve_in_thread(
        create_app(parse_team(team, "team.yaml", {"PINFACTORY_LEDGER": str(ledger)}))
    ) as url:
        yield url, ledger


def remote_team(name: str, upstream_url: str, *more: str) -> str:
    """A team file whose ``remote`` member (``openai_http``, the fallback) points at the
    recording upstream at ``upstream_url``, with ``more`` members (flow-style YAML maps)."""
    members = "".join(f"  - {member}\n" for member in more)
    return f"""\
name: {name}
members:
  - {{name: remote, kind: openai_http,
      settings: {{base_url: "{upstream_url}/v1", model: upstream-model}}}}
{members}routing: {{kind: rules, fallback: remote}}
"""
