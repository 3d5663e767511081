"""``pinfactory serve``, ``ask`` and ``demo``: the team answering questions."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from pinfactory.cli.common import JsonOption, TeamOption, clear_errors, console, team_from

SAMPLE_QUESTIONS = (
    "What is the capital of France?",
    "What is 17% of 2,340?",
    "What's the status of order 1042?",
    "12 times 7",
    "Where is my order #1007?",
    "Who wrote Romeo and Juliet?",
)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(ask)
    app.command()(demo)


def serve(
    team: TeamOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="gateway worker processes")] = 1,
) -> None:
    """Serve the team behind an OpenAI-compatible API."""
    from pinfactory.gateway.server import serve_forever

    loaded = team_from(team)
    where = f"http://{host}:{port}/v1"
    console.print(
        f"pinfactory: team '{loaded.name}' on {where} "
        f"({workers} worker(s), ledger {loaded.ledger_location})"
    )
    serve_forever(loaded, team, host, port, workers=workers)


def ask(
    question: Annotated[str, typer.Argument(help="the question")],
    team: TeamOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer one question through the same pipeline the gateway uses."""
    from pinfactory.gateway.schema import completion_body
    from pinfactory.pipeline import open_pipeline
    from pinfactory.request import Request

    loaded = team_from(team)

    async def run() -> dict[str, Any]:
        async with open_pipeline(loaded) as pipeline:
            return completion_body(await pipeline.complete(Request.from_text(question, unit="cli")))

    with clear_errors():
        body = asyncio.run(run())
    if as_json:
        print(json.dumps(body, indent=2))
        return
    meta = body["pinfactory"]
    console.print(body["choices"][0]["message"]["content"], highlight=False)
    console.print(
        f"[dim]member[/] {meta['member']}  [dim]reason[/] {meta['reason']}  "
        f"[dim]cost[/] ${meta['cost_usd']:.8f}  [dim]latency[/] {meta['latency_ms']:.0f} ms",
        highlight=False,
    )


def demo(team: TeamOption = None) -> None:
    """Start the gateway, ask sample questions with the OpenAI SDK, show where each went."""
    from openai import OpenAI

    from pinfactory.gateway import create_app
    from pinfactory.gateway.server import serve_in_thread

    loaded = team_from(team)
    table = Table(title=f"team '{loaded.name}' through the OpenAI SDK")
    for column in ("question", "answer", "member", "reason", "cost (USD)", "ms"):
        table.add_column(column, overflow="fold")
    with console.status("starting the gateway and loading the local model..."):
        server = serve_in_thread(create_app(loaded))
        base_url = server.__enter__()
    try:
        client = OpenAI(base_url=base_url + "/v1", api_key="demo")
        for question in SAMPLE_QUESTIONS:
            with console.status(f"asking: {question}"):
                raw = client.chat.completions.with_raw_response.create(
                    model="auto", messages=[{"role": "user", "content": question}]
                )
            reply = raw.parse()
            meta = (reply.model_extra or {})["pinfactory"]
            table.add_row(
                question,
                (reply.choices[0].message.content or "").strip()[:80],
                raw.headers["x-pinfactory-member"],
                meta["reason"],
                raw.headers["x-pinfactory-cost-usd"],
                f"{meta['latency_ms']:.0f}",
            )
    finally:
        server.__exit__(None, None, None)
    console.print(table)
    console.print(
        f"every request is in the ledger: {loaded.ledger_location} (see `pinfactory costs`)"
    )
