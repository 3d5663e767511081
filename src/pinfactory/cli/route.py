"""``pinfactory route``, ``rules test`` and ``router fit|eval``: routing from the shell."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml

from pinfactory.cli.common import JsonOption, TeamOption, clear_errors, console, team_from
from pinfactory.errors import RoutingError
from pinfactory.lab import ope
from pinfactory.request import Request
from pinfactory.routing import LEARNED_KINDS, build_router
from pinfactory.routing.distill import distill, fidelity
from pinfactory.routing.hybrid import HybridRouter
from pinfactory.routing.learned_kinds import load_router
from pinfactory.routing.quotas import build_quota_gate
from pinfactory.routing.rules import RulesRouter
from pinfactory.routing.rules_file import is_rules_file, load_rules_file
from pinfactory.routing.table_files import load_tables, select_split

rules_app = typer.Typer(help="Routing rules.", no_args_is_help=True)
router_app = typer.Typer(help="Learned routers: train and score.", no_args_is_help=True)
SplitOption = Annotated[
    str,
    typer.Option(
        "--split",
        help="rows of a generic log's split column to use: train | test | all "
        "(files without one are used whole)",
    ),
]
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
def rules_test(
    file: Annotated[Path, typer.Argument(help="team file, or a rules file, whose rules to test")],
) -> None:
    """Run each rule's `expect:` examples like unit tests; exit 1 on any failure."""

    router: Any
    if is_rules_file(file):  # a bare rules file (the lab's, or one `rules distill` wrote)
        with clear_errors():
            config = load_rules_file(file)
        router = RulesRouter(config.rules, config.fallback)
    else:
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


@rules_app.command("distill")
def rules_distill(
    router: Annotated[
        Path, typer.Option("--router", help="a file from `router fit` (the teacher)")
    ],
    data: DataOption,
    out: Annotated[Path, typer.Option("--out", help="where to write the rules YAML")],
    max_rules: Annotated[int, typer.Option(min=1, help="length of the decision list")] = 12,
    lam: Annotated[float | None, typer.Option(help="the teacher's cost weight")] = None,
    split: SplitOption = "train",
) -> None:
    """Distil a learned router into a short, editable decision list of rules."""

    with clear_errors():
        teacher = load_router(router)
        table = load_tables(data, split=None if split == "all" else split)
        knobs = {} if lam is None else {"lam": lam}
        picks = teacher.predict(table.prompts, **knobs)
        names = [teacher.members_[i] for i in picks]
        result = distill(table.prompts, names, max_rules=max_rules)
        out.write_text(
            yaml.safe_dump(
                result.config.model_dump(exclude_defaults=True, by_alias=True),
                sort_keys=False,
                allow_unicode=True,
            ),
            encoding="utf-8",
        )
    line = f"{len(result.config.rules)} rules, fidelity {result.fidelity:.3f} on {len(table)}"
    if split == "train":
        held = select_split(load_tables(data, split=None), "test")
        if len(held) != len(table):
            picks = teacher.predict(held.prompts, **knobs)
            agree = fidelity(result.config, held.prompts, [teacher.members_[i] for i in picks])
            line += f" training prompts, {agree:.3f} on {len(held)} test prompts"
    console.print(f"{line}: {out}", highlight=False)


@router_app.command("fit")
def router_fit(
    data: DataOption,
    kind: Annotated[str, typer.Option(help=" | ".join(LEARNED_KINDS))],
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
    cost_model: Annotated[
        str,
        typer.Option(help="mean | neighbours: a member's cost per prompt (quality, irt, cluster)"),
    ] = "mean",
    split: SplitOption = "train",
) -> None:
    """Train a learned router on a routing table and save it."""

    with clear_errors():
        if kind not in LEARNED_KINDS:
            raise RoutingError(f"unknown kind '{kind}'; allowed: {', '.join(LEARNED_KINDS)}")
        if kind == "classifier" and (budget is not None or target is not None or lam):
            raise RoutingError(
                "kind classifier has no cost weight: --lam, --budget and --target need "
                "--kind quality or --kind gumbel"
            )
        if budget is not None and target is not None:
            raise RoutingError("give --budget or --target, not both")
        if cost_model != "mean" and kind in ("classifier", "gumbel"):
            raise RoutingError(
                f"kind {kind} weighs no per-prompt cost: --cost-model needs "
                "--kind quality, irt or cluster"
            )
        table = load_tables(data, split=None if split == "all" else split)
        params: dict[str, Any] = {"encoder": encoder}
        if model is not None:
            params["model"] = model
        if kind != "classifier":
            params.update(lam=lam, budget_usd=budget, quality_target=target)
        if cost_model != "mean":
            params["cost_model"] = cost_model
        router = LEARNED_KINDS[kind](**params).fit(table)
        router.save(out)
    lam_ = getattr(router, "lam_", None)
    extra = f", lambda={lam_:g}/USD" if lam_ is not None else ""
    held = getattr(router, "calibration_", None)
    if held is not None:
        extra += f" (held-out {held[2]} prompts: quality {held[0]:.3f}, ${held[1]:.3g} a query)"
    rows = (
        f"{len(table)} {table.meta['split']} prompts"
        if "split" in table.meta
        else (f"{len(table)} prompts")
    )
    console.print(
        f"trained {kind} on {rows} x {len(table.members)} members{extra}: {out}", highlight=False
    )


@router_app.command("eval")
def router_eval(
    router: Annotated[Path, typer.Option("--router", help="a file from `router fit`")],
    data: DataOption,
    lam: Annotated[float | None, typer.Option(help="override the cost weight")] = None,
    as_json: JsonOption = False,
    split: SplitOption = "test",
) -> None:
    """Score a saved router on a labelled table against every single member and the oracle."""

    with clear_errors():
        learned = load_router(router)
        table = load_tables(data, split=None if split == "all" else split)
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
        "split": table.meta.get("split", "all"),
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
    if "split" not in table.meta:
        console.print(
            f"scored on all {len(table)} prompts (the data has no split column): if the router "
            "was fitted on this data, these are training scores; give the log a split column "
            "(train / test) to hold prompts out",
            highlight=False,
        )


@router_app.command("evaluate-offline")
def router_evaluate_offline(
    log: Annotated[
        Path,
        typer.Option(
            "--log",
            help="decision log, CSV or JSONL: prompt, member, propensity, quality, cost_usd",
        ),
    ],
    candidate: Annotated[Path, typer.Option("--candidate", help="a file from `router fit`")],
    lam: Annotated[
        float, typer.Option(help="reward = quality - lam x cost (quality per USD)")
    ] = 0.0,
    candidate_lam: Annotated[
        float | None, typer.Option(help="the candidate's own cost weight (default: its file's)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Estimate a candidate router's value from logged decisions (IPS and doubly robust,
    95% intervals) and say whether it beats the policy that logged them; exit 1 if not."""

    with clear_errors():
        decisions = ope.read_decisions(log)
        router = load_router(candidate)
        members = list(router.members_)
        unknown = sorted(set(decisions.chosen) - set(members))
        if unknown:
            raise RoutingError(
                f"{log}: members {', '.join(unknown)} are not among the candidate's "
                f"({', '.join(members)})"
            )
        chosen = np.array([members.index(m) for m in decisions.chosen], dtype=np.int64)
        vectors = router.embed(decisions.prompts, cache=True).astype(np.float64)
        knobs = {} if candidate_lam is None else {"lam": candidate_lam}
        target = router.predict_vectors(vectors.astype(np.float32), **knobs)
        rewards = decisions.rewards(lam)
        predicted = ope.cross_fitted_rewards(vectors, chosen, rewards, len(members))
        result = ope.compare(chosen, decisions.propensity, rewards, target, predicted)
    report: dict[str, Any] = {
        "decisions": len(chosen),
        "live": vars(result.live),
        "ips": vars(result.ips),
        "dr": vars(result.dr),
        "dr_gain_over_live": vars(result.gain),
        "beats_live": result.beats_live,
        "agreement_with_log": float((target == chosen).mean()),
    }
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for name in ("live", "ips", "dr", "dr_gain_over_live"):
            row = report[name]
            console.print(
                f"{name:<18} {row['value']:+.4f}  [{row['low']:+.4f}, {row['high']:+.4f}]",
                highlight=False,
            )
        verdict = "beats" if result.beats_live else "does not surely beat"
        console.print(f"candidate {candidate} {verdict} the live policy ({len(chosen)} decisions)")
    if not result.beats_live:
        raise typer.Exit(1)
