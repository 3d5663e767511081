"""``pinfactory serve``, ``ask`` and ``demo``: the team answering questions."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Annotated, Any

import typer
from openai import OpenAI
from rich.table import Table

from pinfactory.cli.common import JsonOption, TeamOption, clear_errors, console, team_from
from pinfactory.pipeline import open_pipeline
from pinfactory.request import Request

SAMPLE_QUESTIONS = (
    "What is the capital of Italy?",
    "What is 17% of 2,340?",
    "What's the status of order 1042?",
    "12 times 7",
    "Where is my order #1007?",
    "Has my package shipped yet?",
    "Who painted the Mona Lisa?",
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
    allow_open: Annotated[
        bool,
        typer.Option(
            "--allow-open",
            help="serve a team without API keys on a non-loopback address (anyone who can "
            "reach it can use it and its /admin API)",
        ),
    ] = False,
) -> None:
    """Serve the team behind an OpenAI-compatible API."""
    # the gateway (starlette, uvicorn: about 0.7 s to import) loads only for commands using it
    from pinfactory.gateway.server import open_exposure, serve_forever

    loaded = team_from(team)
    with clear_errors():
        warning = open_exposure(loaded, host, allow_open=allow_open)
    if warning:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
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
    # the gateway (starlette, uvicorn: about 0.7 s to import) loads only for commands using it
    from pinfactory.gateway.schema import completion_body

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

    # the gateway (starlette, uvicorn: about 0.7 s to import) loads only for commands using it
    from pinfactory.gateway import create_app
    from pinfactory.gateway.server import serve_in_thread

    loaded = team_from(team)
    spend: dict[str, Decimal] = {}
    console.print(f"starting the gateway on team '{loaded.name}' (the local model loads first)...")
    with (
        serve_in_thread(create_app(loaded)) as base_url,
        OpenAI(base_url=base_url + "/v1", api_key="demo") as client,
    ):
        console.print(f"asking through the OpenAI SDK at {base_url}/v1\n")
        for question in SAMPLE_QUESTIONS:
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": question}]
            )
            reply = raw.parse()
            meta = (reply.model_extra or {})["pinfactory"]
            member, cost = raw.headers["x-pinfactory-member"], raw.headers["x-pinfactory-cost-usd"]
            spend[member] = spend.get(member, Decimal(0)) + Decimal(cost)
            console.print(f"[bold]{question}[/]", highlight=False)
            console.print(
                f"  -> {(reply.choices[0].message.content or '').strip()}", highlight=False
            )
            where = f"[cyan]{member}[/] | {meta['reason']} | ${cost}"
            console.print(f"     {where} | {meta['latency_ms']:.0f} ms", highlight=False)
    table = Table(title="spend by member")
    table.add_column("member")
    table.add_column("cost (USD)", justify="right")
    for name, total in spend.items():
        table.add_row(name, f"{total:.8f}")  # as `pinfactory costs` prints it
    console.print(table)
    console.print(f"every request is in the ledger {loaded.ledger_location}: `pinfactory costs`")
