"""Time to first token of a stream on the default team, relayed against held whole.

The packaged default team verifies answers that carry documents; a stream with none is
relayed as the local model writes it (``VerifyStage.holds_stream``). The "held" side is the
same team with a ``retrieval`` member added: an answer may then carry passages to check, so
each stream is made whole first (what every stream on a verifying team did before), while
the ``local`` answers it is asked for have nothing more to check. Both
gateways run in this process on loopback; the official ``openai`` SDK streams the same
prompts to each, alternating, and the first content delta and the last chunk are timed.

    python bench/first_token.py [--requests 8] [--max-tokens 60]

Prints the medians and writes ``bench/results/first_token.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from openai import OpenAI
from rich.progress import track

import run_record  # bench/ is on the path when this script runs
from pinfactory.gateway import create_app
from pinfactory.gateway.server import serve_in_thread
from pinfactory.team import default_team_path, parse_team

HOLD = "  - {name: docs, kind: retrieval, tier: tool}  # cites passages: streams are held\n"


def team_text(held: bool) -> str:
    text = default_team_path().read_text(encoding="utf-8")
    if held:
        text = text.replace("members:\n", "members:\n" + HOLD, 1)
    return text


def one(client: OpenAI, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """Seconds to the first content delta, to the end, and the content deltas seen."""
    start = time.perf_counter()
    first, deltas = 0.0, 0
    with client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        max_tokens=max_tokens,
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                deltas += 1
                first = first or time.perf_counter() - start
    return first, time.perf_counter() - start, deltas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8, help="streams per side")
    parser.add_argument("--max-tokens", type=int, default=60)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "first_token.json"
    )
    args = parser.parse_args()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PINFACTORY_FRONTIER")}
    folder = Path(tempfile.mkdtemp(prefix="pinfactory-first-token-"))
    sides = {"relayed": False, "held": True}
    timed: dict[str, list[tuple[float, float, int]]] = {side: [] for side in sides}
    with (
        serve_in_thread(
            create_app(
                parse_team(
                    team_text(False),
                    "relayed.yaml",
                    {**environ, "PINFACTORY_LEDGER": str(folder / "a.db")},
                )
            )
        ) as relayed,
        serve_in_thread(
            create_app(
                parse_team(
                    team_text(True),
                    "held.yaml",
                    {**environ, "PINFACTORY_LEDGER": str(folder / "b.db")},
                )
            )
        ) as held,
    ):
        urls = {"relayed": relayed, "held": held}
        clients = {
            side: OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for side, url in urls.items()
        }
        for side in sides:  # warm the model on each side
            one(clients[side], "Hello.", 8)
        for index in track(range(args.requests), description="streaming"):
            prompt = f"Write two sentences about the sea (number {index})."
            for side in sides if index % 2 == 0 else reversed(list(sides)):
                timed[side].append(one(clients[side], prompt, args.max_tokens))
    report = run_record.header("first_token")
    for side, runs in timed.items():
        report[side] = {
            "first_token_ms": round(statistics.median(r[0] for r in runs) * 1000, 1),
            "whole_ms": round(statistics.median(r[1] for r in runs) * 1000, 1),
            "content_deltas": statistics.median(r[2] for r in runs),
        }
        figures = report[side]
        print(
            f"{side:8} first token {figures['first_token_ms']:7.1f} ms, whole "
            f"{figures['whole_ms']:7.1f} ms, {figures['content_deltas']:.0f} content deltas"
        )
    run_record.write(args.out, report)


if __name__ == "__main__":
    main()
