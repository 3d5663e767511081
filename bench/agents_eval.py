"""Do teams of agents beat one agent, and the same tokens spent on an ensemble?

Every agent step is a request through the team's pipeline (ledger, costs, traces).
Conditions, each over ``--seeds`` seeds:

- ``single``: one agent;
- ``team``: three agents, no personas, no theory of mind;
- ``personas``: the same three with distinct personas;
- ``personas+tom``: personas plus theory-of-mind prompting;
- ``ensemble``: independent samples of the single agent (none sees another) at about
  the team's tokens, combined by majority vote (the game: the median guess).

Task sets:

(a) Riedl's group guessing game (2025, "Emergent coordination in multi-agent
    language models"; riedlc/AI-GBS): three players each say a number from 0 to 50;
    the group wins when the numbers add up to a secret total. After each round the
    group hears only "too high" / "too low". Per condition: win rate, final distance,
    rounds, cost; and, pooled over seeds, the partial information decomposition
    (Williams-Beer I_min) of two players' moves about the group's next feedback,
    the O-information of the three players' moves, and the time-delayed mutual
    information from one player's move to another's next move, with permutation
    p-values.
(b) checkable tasks: arithmetic word problems (the calculator as a tool) and order
    questions (the orders tool), generated from the seed; the answer is checked
    exactly. Every tool call is its own pipeline request to the tool member: through
    OpenAI tool calling when the member declares it (``frontier``), else by the
    ``CALL tool: input`` text convention (the local model).
(c) compounding: HaluEval questions answered from their knowledge, then rewritten
    step after step, with and without a verification gate (the grounding checker);
    per-step vs chain-level unsupported-claim rates and the composition fit.

The local member is Gemma 3 270M: small and slow. To run the same script against any
OpenAI-compatible model, set the default team's frontier member by its environment and
pass ``--member frontier``::

    PINFACTORY_FRONTIER_BASE_URL=https://api.example.com/v1 \
    PINFACTORY_FRONTIER_API_KEY=sk-... PINFACTORY_FRONTIER_MODEL=gpt-4o-mini \
    python bench/agents_eval.py --member frontier --seeds 10

    OMP_NUM_THREADS=1 python bench/agents_eval.py --seeds 10 [--member local] [--quick]

Writes bench/results/agents_eval.json and bench/results/agents_eval.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pinfactory.agents import AgentsSpec, RunState, parse_agents, run_agents
from pinfactory.agents.compounding import Chain, fit_composition, run_chain, step_rates
from pinfactory.agents.runner import ensemble_spec, matched_samples
from pinfactory.agents.spec import SwitchesSpec
from pinfactory.agents.synergy import group_information
from pinfactory.pipeline import Pipeline, open_pipeline
from pinfactory.team import load_team
from pinfactory.verify.grounding import GroundingChecker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SHARED = next(
    (p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data",
)
PERSONAS = (
    "A cautious accountant who changes numbers in small steps.",
    "A bold explorer who makes big jumps.",
    "A mediator who balances what the others do.",
)
CONDITIONS = ("single", "team", "personas", "personas+tom", "ensemble")
_INT = re.compile(r"-?\d+")


@dataclass
class Outcome:
    """One condition on one item: correct or not, distance (game), steps, tokens, cost."""

    correct: bool
    steps: int
    tokens: int
    cost_usd: float
    distance: float = 0.0
    moves: list[list[int]] = field(default_factory=list)  # per round, per player
    feedback: list[int] = field(default_factory=list)  # per round: -1 low, 0 hit, 1 high


def switches(condition: str) -> SwitchesSpec:
    return SwitchesSpec(
        personas=condition.startswith("personas"), theory_of_mind=condition == "personas+tom"
    )


# ---------------------------------------------------------------- (a) the guessing game


GAME_TASK = (
    "{n} players each say one number from 0 to {top}. The group wins when the numbers "
    "add up to a secret total. After each round the group only hears too high or too low. "
    "Say your number."
)


class Game:
    """The environment: sums each round's guesses and says too high / too low / correct."""

    def __init__(self, players: Sequence[str], target: int) -> None:
        self.players, self.target = list(players), target
        self.rounds: list[dict[str, int]] = []
        self.feedback: list[int] = []
        self.current: dict[str, int] = {}

    def __call__(self, state: RunState) -> str | None:
        post = state.posts[-1]
        if post.agent not in self.players:
            return None
        found = _INT.findall(post.text)
        self.current[post.agent] = min(50, max(0, int(found[0]))) if found else 0
        if len(self.current) < len(self.players):
            return None
        total = sum(self.current.values())
        self.rounds.append(dict(self.current))
        self.current = {}
        sign = (total > self.target) - (total < self.target)
        self.feedback.append(sign)
        word = {1: "too high", -1: "too low", 0: "correct"}[sign]
        return f"Round {len(self.rounds)}: total {total} is {word}."


def game_spec(players: int, rounds: int, member: str, max_tokens: int) -> AgentsSpec:
    agents = [
        {
            "name": f"p{i + 1}",
            "member": member,
            "persona": PERSONAS[i % len(PERSONAS)],
            "max_tokens": max_tokens,
        }
        for i in range(players)
    ]
    return parse_agents(
        {
            "name": "guessing-game",
            "agents": agents,
            "protocol": {"kind": "round_robin"},
            "termination": {"max_steps": players * rounds, "until": {"contains": "correct"}},
            "blackboard": {"context_posts": players + 1},
            "detectors": {"enabled": False},
        },
        "bench",
    )


async def play(
    pipeline: Pipeline, condition: str, seed: int, rounds: int, member: str, max_tokens: int
) -> Outcome:
    rng = random.Random(seed)
    players = 1 if condition in ("single", "ensemble") else 3
    top = 50 * 3 if players == 1 else 50
    target = rng.randint(30, 120)
    if condition == "ensemble":
        return await play_ensemble(pipeline, seed, rounds, member, max_tokens, target)
    spec = game_spec(players, rounds, member, max_tokens)
    game = Game(spec.names, target)
    task = GAME_TASK.format(n=players, top=top)
    state = await run_agents(
        pipeline, spec, task, seed=seed, environment=game, switches=switches(condition)
    )
    return game_outcome(game, state)


def game_outcome(game: Game, state: RunState) -> Outcome:
    last = game.rounds[-1] if game.rounds else {}
    distance = abs(sum(last.values()) - game.target) if last else float(game.target)
    return Outcome(
        correct=bool(game.feedback) and game.feedback[-1] == 0,
        steps=len(state.steps),
        tokens=state.tokens,
        cost_usd=float(state.cost_usd),
        distance=distance,
        moves=[[r[p] for p in game.players] for r in game.rounds],
        feedback=game.feedback,
    )


async def play_ensemble(
    pipeline: Pipeline, seed: int, rounds: int, member: str, max_tokens: int, target: int
) -> Outcome:
    """Three independent single players (the team's tokens); each round the median guess."""
    spec = game_spec(1, rounds, member, max_tokens)
    outcomes = []
    for copy in range(3):
        game = Game(spec.names, target)
        sample = spec.model_copy(
            update={
                "agents": [
                    spec.agents[0].model_copy(update={"temperature": 0.8, "name": f"p{copy + 1}"})
                ]
            }
        )
        game.players = [f"p{copy + 1}"]
        state = await run_agents(
            pipeline,
            sample,
            GAME_TASK.format(n=1, top=150),
            seed=seed * 10 + copy,
            environment=game,
            switches=switches("single"),
        )
        outcomes.append((game, state))
    medians = [
        statistics.median(g.rounds[i][g.players[0]] for g, _ in outcomes if len(g.rounds) > i)
        for i in range(max(len(g.rounds) for g, _ in outcomes))
    ]
    final = medians[-1] if medians else 0
    return Outcome(
        correct=any(g.feedback and g.feedback[-1] == 0 for g, _ in outcomes),
        steps=sum(len(s.steps) for _, s in outcomes),
        tokens=sum(s.tokens for _, s in outcomes),
        cost_usd=sum(float(s.cost_usd) for _, s in outcomes),
        distance=abs(final - target),
    )


def game_information(outcomes: Sequence[Outcome], permutations: int) -> dict[str, Any]:
    """PID, O-information and time-delayed MI of the players' moves, pooled over seeds."""
    runs = [(o.moves, o.feedback) for o in outcomes]
    found = group_information(runs, permutations=permutations)
    if found is None:
        return {"samples": sum(max(0, len(o.moves) - 2) for o in outcomes)}
    return {
        "samples": found.samples,
        "redundancy_measure": "I_min (Williams & Beer 2010)",
        "pid": {
            k: round(getattr(found.pid, k), 4)
            for k in ("redundancy", "unique_1", "unique_2", "synergy", "total")
        },
        "synergy_p": round(found.synergy_p, 4),
        "redundancy_p": round(found.redundancy_p, 4),
        "o_information": round(found.o_information, 4),
        "o_information_p_synergy": round(found.o_information_p, 4),
        "tdmi_p1_to_p2": round(found.tdmi, 4),
        "tdmi_p": round(found.tdmi_p, 4),
    }


# ---------------------------------------------------------------- (b) checkable tasks


WORD_PROBLEMS = (
    ("{a} boxes hold {b} apples each. How many apples in all?", lambda a, b: a * b),
    ("A shop had {a} pens and sold {b}. How many pens are left?", lambda a, b: a - b),
    ("Tom has {a} coins and finds {b} more. How many coins now?", lambda a, b: a + b),
)


def checkable_items(seed: int, count: int) -> list[tuple[str, str, str]]:
    """(kind, question, expected) pairs: word problems and order questions, from the seed."""
    rng = random.Random(seed)
    statuses = order_statuses()
    items = []
    for i in range(count):
        if i % 2 == 0:
            template, solve = WORD_PROBLEMS[rng.randrange(len(WORD_PROBLEMS))]
            a, b = rng.randint(12, 60), rng.randint(2, 11)
            items.append(("arithmetic", template.format(a=a, b=b), str(solve(a, b))))
        else:
            order = rng.choice(sorted(statuses))
            items.append(("orders", f"What is the status of order {order}?", statuses[order]))
    return items


def order_statuses() -> dict[int, str]:
    path = Path(str(files("pinfactory") / "data" / "orders.db"))
    with sqlite3.connect(path) as db:
        return {int(i): str(s) for i, s in db.execute("SELECT id, status FROM orders")}


SOLVER = (
    "Use the tools. For arithmetic write CALL calculator: <numbers and + - * />. "
    "For an order write CALL orders: order <number>. Then give: answer: <result>."
)
"""For a member that cannot be offered tools (the local model): the text convention."""
TOOL_SOLVER = (
    "Use the tools: calculator for arithmetic (input: the numbers and + - * /), orders "
    "for an order's status (input: order <number>). Then give: answer: <result>."
)
"""For a member that declares tool calling: the tools arrive as OpenAI tools."""


def task_spec(condition: str, member: str, max_tokens: int, native: bool = False) -> AgentsSpec:
    solver = TOOL_SOLVER if native else SOLVER
    roles = [("solver", solver), ("checker", "Check the tool result and give: answer: <result>.")]
    if condition == "single":
        roles = roles[:1]
    else:
        roles.append(("reviewer", "Say if the answer is right and give: answer: <result>."))
    agents = [
        {
            "name": name,
            "member": member,
            "instructions": text,
            "persona": PERSONAS[i % len(PERSONAS)],
            "tools": ["calculator", "orders"],
            "max_tokens": max_tokens,
        }
        for i, (name, text) in enumerate(roles)
    ]
    return parse_agents(
        {
            "name": "solve-" + condition.replace("+", "-"),
            "agents": agents,
            "protocol": {"kind": "sequential"},
            "blackboard": {"context_posts": 4},
            "aggregation": "last",
            "detectors": {"enabled": False},
        },
        "bench",
    )


def is_right(kind: str, expected: str, state: RunState) -> bool:
    said = " ".join(p.text for p in state.posts if p.kind in ("tool", "message", "judge"))
    if kind == "orders":
        last = [p.text for p in state.posts if p.kind != "task"]
        return bool(last) and expected.lower() in last[-1].lower()
    return state.answer == expected or (bool(said) and said.strip().endswith(expected))


async def solve(
    pipeline: Pipeline,
    condition: str,
    item: tuple[str, str, str],
    seed: int,
    member: str,
    max_tokens: int,
    team_tokens: int,
) -> Outcome:
    kind, question, expected = item
    native = pipeline.members[member].capabilities.tools
    if condition == "ensemble":
        single = task_spec("single", member, max_tokens, native)
        samples = matched_samples(team_tokens, max(1, team_tokens // 3))
        spec = ensemble_spec(single.agents[0], samples)
        state = await run_agents(pipeline, spec, question, seed=seed)
        answers = [p.text for p in state.posts if p.kind == "tool"]
        right = state.answer == expected or (
            kind == "orders" and any(expected.lower() in a.lower() for a in answers)
        )
    else:
        state = await run_agents(
            pipeline,
            task_spec(condition, member, max_tokens, native),
            question,
            seed=seed,
            switches=switches(condition),
        )
        right = is_right(kind, expected, state)
    return Outcome(right, len(state.steps), state.tokens, float(state.cost_usd))


# ---------------------------------------------------------------- (c) compounding


def halueval(limit: int, seed: int) -> list[dict[str, str]]:
    path = SHARED / "halueval" / "qa_one-turn_data.json"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    random.Random(seed).shuffle(rows)
    return rows[:limit]


async def compounding(
    pipeline: Pipeline,
    member: str,
    questions: int,
    length: int,
    max_tokens: int,
    tick: Callable[[], None],
) -> dict[str, Any]:
    checker = GroundingChecker()
    result: dict[str, Any] = {}
    for gated in (False, True):
        chains: list[Chain] = []
        for row in halueval(questions, 0):
            chains.append(
                await run_chain(
                    pipeline,
                    checker,
                    row["question"],
                    [row["knowledge"]],
                    length,
                    gated=gated,
                    clean=row["right_answer"],
                    model=member,
                    max_tokens=max_tokens,
                    tags=("bench:agents_eval",),
                )
            )
            tick()
        fit = fit_composition(chains)
        p_answer, p_rewrite = step_rates(chains)
        result["gated" if gated else "ungated"] = {
            "chains": len(chains),
            "p_answer": round(p_answer, 4),
            "p_rewrite": round(p_rewrite, 4),
            "observed_by_length": {n: round(v, 4) for n, v in fit.observed.items()},
            "independent_by_length": {n: round(v, 4) for n, v in fit.predicted.items()},
            "k": None if math.isnan(fit.k) else round(fit.k, 3),
            "k_95": [None if math.isnan(v) else round(v, 3) for v in (fit.low, fit.high)],
            "verdict": fit.verdict,
        }
    return result


# ---------------------------------------------------------------- statistics and output


def mean_ci(values: Sequence[float], seed: int = 0, resamples: int = 2000) -> dict[str, float]:
    """Mean and a 95% percentile-bootstrap interval (over seeds)."""
    if not values:
        return {"mean": math.nan, "low": math.nan, "high": math.nan}
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(resamples))
    return {
        "mean": round(statistics.fmean(values), 10),
        "low": round(means[int(0.025 * resamples)], 10),
        "high": round(means[int(0.975 * resamples) - 1], 10),
    }


def summarise(by_seed: dict[str, list[list[Outcome]]]) -> dict[str, Any]:
    """Per condition: per-seed means of accuracy, distance, steps, tokens, cost, with CIs."""
    out: dict[str, Any] = {}
    for condition, seeds in by_seed.items():

        def per_seed(
            get: Callable[[Outcome], float], seeds: list[list[Outcome]] = seeds
        ) -> list[float]:
            return [statistics.fmean(get(o) for o in outcomes) for outcomes in seeds if outcomes]

        out[condition] = {
            "seeds": len(seeds),
            "accuracy": mean_ci(per_seed(lambda o: float(o.correct))),
            "distance": mean_ci(per_seed(lambda o: o.distance)),
            "steps": mean_ci(per_seed(lambda o: o.steps)),
            "tokens": mean_ci(per_seed(lambda o: o.tokens)),
            "cost_usd": mean_ci(per_seed(lambda o: o.cost_usd)),
        }
    return out


def compare(by_seed: dict[str, list[list[Outcome]]], metric: str) -> dict[str, Any]:
    """Each team condition minus single and minus the ensemble, paired by seed, 95% CI."""
    out: dict[str, Any] = {}

    def value(outcomes: list[Outcome]) -> float:
        return statistics.fmean(float(getattr(o, metric)) for o in outcomes)

    for condition in ("team", "personas", "personas+tom"):
        for baseline in ("single", "ensemble"):
            pairs = zip(by_seed[condition], by_seed[baseline], strict=False)
            diffs = [value(a) - value(b) for a, b in pairs if a and b]
            out[f"{condition} - {baseline}"] = mean_ci(diffs)
    return out


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (
        ("game", "distance", "game: final |total - target| (lower is better)", None),
        ("tasks", "accuracy", "tasks: accuracy", (0.0, 1.0)),
    )
    for ax, (name, key, label, limits) in zip(axes[:2], panels, strict=True):
        rows = report[name]["conditions"]
        names = list(rows)
        means = [rows[c][key]["mean"] for c in names]
        errs = [
            [m - rows[c][key]["low"] for c, m in zip(names, means, strict=True)],
            [rows[c][key]["high"] - m for c, m in zip(names, means, strict=True)],
        ]
        ax.bar(names, means, yerr=errs, capsize=4, color="#4c72b0")
        ax.set_title(f"{label}\n95% CI over seeds", fontsize=10)
        if limits is not None:
            ax.set_ylim(*limits)
        ax.tick_params(axis="x", rotation=25)
    ax = axes[2]
    for gated, style in (("ungated", "o-"), ("gated", "s-")):
        data = report["compounding"].get(gated)
        if not data:
            continue
        lengths = [int(n) for n in data["observed_by_length"]]
        ax.plot(
            lengths, list(data["observed_by_length"].values()), style, label=f"{gated}: observed"
        )
        ax.plot(
            lengths,
            list(data["independent_by_length"].values()),
            style.replace("-", ":"),
            alpha=0.6,
            label=f"{gated}: independent",
        )
    ax.set_xlabel("chain length")
    ax.set_ylabel("final output unsupported")
    ax.set_title("compounding by chain length")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.suptitle(f"agents_eval: member {report['member']}, {report['seeds']} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report_of(
    args: argparse.Namespace,
    game: dict[str, list[list[Outcome]]],
    tasks: dict[str, list[list[Outcome]]],
    chains: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    game_outcomes = {c: [o for s in v for o in s] for c, v in game.items()}
    return {
        "command": "python bench/agents_eval.py " + " ".join(args.argv),
        "member": args.member,
        "seeds": min((len(v) for v in tasks.values()), default=0),
        "seconds": round(seconds, 1),
        "game": {
            "rounds": args.rounds,
            "conditions": summarise(game),
            "differences": {
                "correct": compare(game, "correct"),
                "distance": compare(game, "distance"),
            },
            "information": {
                c: game_information(game_outcomes[c], args.permutations)
                for c in ("team", "personas", "personas+tom")
            },
        },
        "tasks": {
            "items_per_seed": args.items,
            "conditions": summarise(tasks),
            "differences": {"correct": compare(tasks, "correct")},
        },
        "compounding": chains,
        "raw": {
            "game": {c: [[asdict(o) for o in s] for s in v] for c, v in game.items()},
            "tasks": {c: [[asdict(o) for o in s] for s in v] for c, v in tasks.items()},
        },
    }


def merge(args: argparse.Namespace, paths: Sequence[Path]) -> dict[str, Any]:
    """One report from runs over disjoint seeds (``--first-seed``); compounding from the one
    that ran it."""
    game: dict[str, list[list[Outcome]]] = {c: [] for c in CONDITIONS}
    tasks: dict[str, list[list[Outcome]]] = {c: [] for c in CONDITIONS}
    chains: dict[str, Any] = {}
    seconds = 0.0
    commands = []
    done: set[int] = set()
    for path in paths:
        part = json.loads(path.read_text(encoding="utf-8"))
        first = parse(part["command"].split()[2:]).first_seed
        count = min(len(v) for v in part["raw"]["tasks"].values())
        keep = [i for i in range(count) if first + i not in done]  # a seed run twice counts once
        done.update(first + i for i in keep)
        for name, into in (("game", game), ("tasks", tasks)):
            for condition, seeds in part["raw"][name].items():
                into[condition].extend([[Outcome(**o) for o in seeds[i]] for i in keep])
        chains = chains or part["compounding"]
        seconds = max(seconds, part["seconds"])
        commands.append(part["command"])
    report = report_of(args, game, tasks, chains, seconds)
    report["command"] = " & ".join(commands) + "; then --merge"
    return report


def save(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Compounding first, then seed after seed; the JSON is rewritten after every seed."""
    team = load_team(args.team)
    if args.member not in team.member_names:
        raise SystemExit(f"member '{args.member}' is not enabled; enabled: {team.member_names}")
    ledger = Path(tempfile.mkdtemp(prefix="agents-eval-")) / "ledger.db"
    team.ledger_location = str(ledger)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    game: dict[str, list[list[Outcome]]] = {c: [] for c in CONDITIONS}
    tasks: dict[str, list[list[Outcome]]] = {c: [] for c in CONDITIONS}
    total = len(seeds) * len(CONDITIONS) * (1 + args.items) + 2 * args.chains
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    async with open_pipeline(team) as pipeline:
        with Progress(*columns) as progress:
            bar = progress.add_task("agents_eval", total=total)

            def tick(label: str = "") -> None:
                progress.update(bar, advance=1, description=label or "agents_eval")

            chains = (
                await compounding(
                    pipeline,
                    args.member,
                    args.chains,
                    args.length,
                    args.max_tokens,
                    lambda: tick("compounding"),
                )
                if args.chains
                else {}
            )
            for seed in seeds:
                for condition in CONDITIONS:
                    outcome = await play(
                        pipeline, condition, seed, args.rounds, args.member, args.game_tokens
                    )
                    game[condition].append([outcome])
                    tick(f"game seed {seed} {condition}")
                team_tokens = 0
                for condition in CONDITIONS:
                    done = []
                    for item in checkable_items(seed, args.items):
                        outcome = await solve(
                            pipeline,
                            condition,
                            item,
                            seed,
                            args.member,
                            args.max_tokens,
                            team_tokens or 3 * args.max_tokens,
                        )
                        done.append(outcome)
                        tick(f"tasks seed {seed} {condition}")
                    tasks[condition].append(done)
                    if condition == "team":
                        team_tokens = int(statistics.fmean(o.tokens for o in done))
                partial = report_of(args, game, tasks, chains, time.perf_counter() - started)
                save(partial, args.out)
    return report_of(args, game, tasks, chains, time.perf_counter() - started)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--team", type=Path, default=None, help="team file (default packaged)")
    parser.add_argument("--member", default="local", help="member every agent runs on")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="to split seeds over runs")
    parser.add_argument("--merge", type=Path, nargs="+", help="merge these runs' JSON instead")
    parser.add_argument("--rounds", type=int, default=5, help="guessing game rounds")
    parser.add_argument("--items", type=int, default=4, help="checkable tasks per seed")
    parser.add_argument("--chains", type=int, default=30, help="compounding questions")
    parser.add_argument("--length", type=int, default=4, help="longest chain")
    parser.add_argument("--max-tokens", type=int, default=12, help="tasks and chains")
    parser.add_argument("--game-tokens", type=int, default=4, help="a guess is a number")
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 rounds, 2 items")
    parser.add_argument("--out", type=Path, default=RESULTS / "agents_eval.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.rounds, args.items, args.chains, args.length = 2, 2, 2, 4, 2
    args.argv = list(argv)
    return args


if __name__ == "__main__":
    import sys

    arguments = parse(sys.argv[1:])
    merging = arguments.merge is not None
    report = merge(arguments, arguments.merge) if merging else asyncio.run(main(arguments))
    save(report, arguments.out)
    plot(report, arguments.out.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("member", "seeds", "seconds")}))
    for name in ("game", "tasks"):
        for condition, row in report[name]["conditions"].items():
            acc = row["accuracy"]
            print(
                f"{name:5} {condition:13} accuracy {acc['mean']:.2f} "
                f"[{acc['low']:.2f}, {acc['high']:.2f}]  tokens {row['tokens']['mean']:.0f}  "
                f"cost ${row['cost_usd']['mean']:.8f}  distance {row['distance']['mean']:.1f}"
            )
    print(json.dumps(report["compounding"], indent=1))
