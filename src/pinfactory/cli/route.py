"""``pinfactory route``, ``rules test`` and ``router fit|eval``: routing from the shell."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from pinfactory.cli.common import JsonOption, TeamOption, clear_errors, console, team_from

rules_app = typer.Typer(help="Routing rules.", no_args_is_help=True)
router_app = typer.Typer(help="Learned routers: train and score.", no_args_is_help=True)
DataOption = Annotated[
    list[Path], typer.Option("--data", help="RouterBench CSV, generic CSV or JSONL (repeatable)")
]


def register(app: typer.Typer) -> None:
    app.command("route")(route)
    app.add_typer(rules_app, name="rules")
    app.add_typer(router_app, name="router")


def route(
    query: Annotated[str, typer.Argument(help="the query to place")],
    team: TeamOption = None,
    explain: Annotated[bool, typer.Option("--explain", help="print every score")] = False,
    as_json: JsonOption = False,
    unit: Annotated[str, typer.Option(help="business unit the query comes from")] = "cli",
) -> None:
    """Show where the gateway would send QUERY for model 'auto', without calling anyone."""
    from pinfactory.request import Request
    from pinfactory.routing import build_router
    from pinfactory.routing.quotas import build_quota_gate

    loaded = team_from(team)
    with clear_errors():
        request = Request.from_text(query, unit=unit)
        decision = build_router(loaded).decide(request)
        decision = asyncio.run(build_quota_gate(loaded).admit(request, decision))
    if as_json:
        print(json.dumps(decision.to_json(), indent=2))
        return
    console.print(f"[bold]{decision.member}[/]  {decision.reason}", highlight=False)
    if explain:
        console.print(
            f"  router {decision.router}  tier {decision.tier}  confidence "
            f"{decision.confidence:.2f}  est. cost ${decision.estimated_cost_usd:.8f}",
            highlight=False,
        )
        for member, score in sorted(decision.scores.items(), key=lambda kv: -kv[1]):
            console.print(f"  {member:<24} {score:.4f}", highlight=False)


@rules_app.command("test")
def rules_test(file: Annotated[Path, typer.Argument(help="team file whose rules to test")]) -> None:
    """Run each rule's `expect:` examples like unit tests; exit 1 on any failure."""
    from pinfactory.routing import build_router
    from pinfactory.routing.hybrid import HybridRouter
    from pinfactory.routing.rules import RulesRouter

    loaded = team_from(file)
    with clear_errors():
        router = build_router(loaded)
    rules = router.rules if isinstance(router, HybridRouter) else router
    if not isinstance(rules, RulesRouter):
        console.print(f"{file}: routing kind '{router.kind}' has no rules to test")
        raise typer.Exit(1)
    failures = rules.check_expectations()
    total = sum(len(rule.expect) for rule in rules.rules)
    for line in failures:
        console.print(f"[red]FAIL[/] {line}", highlight=False)
    console.print(f"{total - len(failures)} passed, {len(failures)} failed ({total} examples)")
    if failures:
        raise typer.Exit(1)


@router_app.command("fit")
def router_fit(
    data: DataOption,
    kind: Annotated[str, typer.Option(help="classifier | quality | gumbel")],
    out: Annotated[Path, typer.Option(help="where to write the router")],
    model: Annotated[
        str | None, typer.Option(help="classifier: logistic|mlp|knn; quality: logistic|knn")
    ] = None,
    lam: Annotated[float, typer.Option(help="cost weight, quality per USD")] = 0.0,
    budget: Annotated[
        float | None, typer.Option(help="calibrate lambda to this mean USD a query")
    ] = None,
    target: Annotated[
        float | None, typer.Option(help="calibrate lambda to this mean quality")
    ] = None,
    encoder: Annotated[str, typer.Option(help="minilm-static | minilm")] = "minilm-static",
) -> None:
    """Train a learned router on a routing table and save it."""
    from pinfactory.errors import RoutingError
    from pinfactory.routing import LEARNED_KINDS
    from pinfactory.routing.table_files import load_tables

    with clear_errors():
        if kind not in LEARNED_KINDS:
            raise RoutingError(f"unknown kind '{kind}'; allowed: {', '.join(LEARNED_KINDS)}")
        table = load_tables(data)
        params: dict[str, Any] = {"encoder": encoder}
        if model is not None:
            params["model"] = model
        if kind != "classifier":
            params.update(lam=lam, budget_usd=budget, quality_target=target)
        router = LEARNED_KINDS[kind](**params).fit(table)
        router.save(out)
    lam_ = getattr(router, "lam_", None)
    extra = f", lambda={lam_:g}/USD" if lam_ is not None else ""
    console.print(
        f"trained {kind} on {len(table)} prompts x {len(table.members)} members{extra}: {out}"
    )


@router_app.command("eval")
def router_eval(
    router: Annotated[Path, typer.Option("--router", help="a file from `router fit`")],
    data: DataOption,
    lam: Annotated[float | None, typer.Option(help="override the cost weight")] = None,
    as_json: JsonOption = False,
) -> None:
    """Score a saved router on a labelled table against every single member and the oracle."""
    from pinfactory.routing.learned import load_router
    from pinfactory.routing.table_files import load_tables

    with clear_errors():
        learned = load_router(router)
        table = load_tables(data)
        knobs = {} if lam is None else {"lam": lam}
        choice = learned.predict(table.prompts, **knobs)
    rows = np.arange(len(table))
    oracle = table.oracle()
    report: dict[str, Any] = {
        "router": {
            "quality": table.quality[rows, choice].mean(),
            "cost_usd": table.cost[rows, choice].mean(),
        },
        "oracle": {
            "quality": table.quality[rows, oracle].mean(),
            "cost_usd": table.cost[rows, oracle].mean(),
        },
        "members": {
            m: {"quality": table.quality[:, i].mean(), "cost_usd": table.cost[:, i].mean()}
            for i, m in enumerate(table.members)
        },
        "prompts": len(table),
    }
    if as_json:
        print(json.dumps(report, indent=2, default=float))
        return
    for name, row in [
        ("router", report["router"]),
        ("oracle", report["oracle"]),
        *report["members"].items(),
    ]:
        console.print(
            f"{name:<36} quality {row['quality']:.3f}  cost ${row['cost_usd']:.2e}", highlight=False
        )
