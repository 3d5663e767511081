"""A request's ``model`` pins the member of that name before it means "route": a member
named like its team is still reachable by name, and ``auto`` still routes."""

from __future__ import annotations

from pathlib import Path

from openai import OpenAI

from pinfactory.testing.recording import RecordingUpstream
from tests.gateway.conftest import gateway_for


def test_a_member_named_like_its_team_is_pinned_by_its_name(
    upstream: tuple[RecordingUpstream, str], recorder: RecordingUpstream, tmp_path: Path
) -> None:
    team = f"""\
name: mini
members:
  - {{name: mini, kind: openai_http, settings: {{base_url: "{upstream[1]}/v1", model: big}}}}
  - {{name: cheap, kind: calculator}}
routing: {{kind: rules, fallback: cheap}}
"""
    with (
        gateway_for(team, tmp_path) as (url, _),
        OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client,
    ):
        messages = [{"role": "user", "content": "Say hi."}]
        pinned = client.chat.completions.create(model="mini", messages=messages)  # type: ignore[arg-type]
        routed = client.chat.completions.create(model="auto", messages=messages)  # type: ignore[arg-type]
    assert pinned.model == "mini" and recorder.last["model"] == "big"
    assert routed.model == "cheap"  # the rules' fallback
