"""``bench/agents_eval.py`` runs against any OpenAI-compatible member set by environment
variables: here a recording upstream on loopback stands in for the frontier model."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pinfactory.gateway.server import serve_in_thread
from pinfactory.testing.recording import RecordingUpstream

BENCH = Path(__file__).resolve().parents[2] / "bench" / "agents_eval.py"


@pytest.fixture(scope="module")
def agents_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agents_eval", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["agents_eval"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def frontier(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingUpstream]:
    recorder = RecordingUpstream()
    with serve_in_thread(recorder.app()) as url:
        monkeypatch.setenv("PINFACTORY_FRONTIER_BASE_URL", url + "/v1")
        monkeypatch.setenv("PINFACTORY_FRONTIER_API_KEY", "sk-test-frontier")
        monkeypatch.setenv("PINFACTORY_FRONTIER_MODEL", "frontier-test-model")
        yield recorder


async def test_the_bench_runs_on_the_frontier_member_from_the_environment(
    agents_eval: ModuleType, frontier: RecordingUpstream, tmp_path: Path
) -> None:
    out = tmp_path / "agents_eval.json"
    argv = ["--member", "frontier", "--seeds", "1", "--rounds", "1", "--items", "2"]
    args = agents_eval.parse([*argv, "--chains", "0", "--permutations", "5", "--out", str(out)])
    report = await agents_eval.main(args)
    agents_eval.save(report, out)
    agents_eval.plot(report, out.with_suffix(".png"))

    assert report["member"] == "frontier" and report["seeds"] == 1
    assert set(report["tasks"]["conditions"]) == set(agents_eval.CONDITIONS)
    assert json.loads(out.read_text())["game"]["conditions"]["single"]["seeds"] == 1
    assert out.with_suffix(".png").stat().st_size > 0
    bodies = frontier.bodies
    assert bodies and {b["model"] for b in bodies} == {"frontier-test-model"}
    task_steps = [b for b in bodies if "tools" in b]  # the checkable tasks offer the tools
    assert task_steps and {t["function"]["name"] for t in task_steps[0]["tools"]} == {
        "calculator",
        "orders",
    }
    assert all("CALL" not in b["messages"][0]["content"] for b in task_steps)
    game_steps = [b for b in bodies if "tools" not in b]
    assert any("secret total" in b["messages"][-1]["content"] for b in game_steps)
