"""How far can routing that reads only the prompt go on RouterBench?

    PYTHONPATH=src python bench/routerbench_ceiling.py

Issue 15 asks for AIQ >= 0.88 and GPT-4's quality at <= 50% of its cost on the test split
without reading answers. This measures what any prompt-only router can reach:

(a) Ceilings with the outcomes known, on each split: the best *task-level* router (one
    member, or a mix, per task: the upper bound of every router that learns the task and
    nothing more), the same with each prompt's actual cost, one that also knows how hard
    each prompt is (how many of the 11 members answer it, not which), and the per-prompt
    oracle. Beside them the zero router (the single members' hull) and what signal a
    router would need: a calibrated per-member signal of within-task AUROC a, simulated,
    mapped to the AIQ it would reach.
(b) Whether anything in the prompt predicts, within a task, who answers it: out-of-fold
    AUROC on the train split (5 folds) and once on test (fitted on train, 95% bootstrap
    interval), of "the task's cheap member is right", "GPT-4 is right and the cheap member
    wrong" and "at most 5 of the 11 are right", from the whole prompt's full-MiniLM
    embedding, the question's (the prompt's last paragraph; :mod:`pinfactory.routing.
    prompt_view`), the question's static embedding and surface features.
(c) What that signal buys: a per-task, per-member logistic model on the question's
    embedding and surface features, shrunk halfway to the task's mean, against the
    task-only reference, out-of-fold on train and once on test.
(d) The same for difficulty: each prompt's difficulty predicted from its 25 most similar
    training questions (how many members answered them), then each member's mean quality
    and cost per task and difficulty level.

No router here reads an answer; the ceilings read outcomes on purpose, to bound routers.
Writes ``bench/results/routerbench_ceiling.json`` and ``routerbench_ceiling.png``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from pinfactory.embeddings import CachedEncoder, get_encoder
from pinfactory.lab import metrics
from pinfactory.lab.datasets import default_root, routerbench
from pinfactory.routing.prompt_view import last_turn, question
from pinfactory.routing.table import RoutingTable

ROOT = Path(__file__).resolve().parents[1]
GPT4 = "gpt-4-1106-preview"
FOLDS = 5
TARGET_AIQ, TARGET_SHARE = 0.88, 0.5
Floats = npt.NDArray[np.float64]
Pick = Callable[[float], npt.NDArray[np.int64]]
LAMS = np.concatenate([[1e-3], np.geomspace(1.0, 1e7, 600)])  # quality per USD


def frontier(table: RoutingTable, pick: Pick) -> list[tuple[float, float]]:
    """(mean cost, mean quality) of the policy's choices at every cost weight."""
    rows = np.arange(len(table))
    points = []
    for lam in LAMS:
        choice = pick(float(lam))
        points.append(
            (float(table.cost[rows, choice].mean()), float(table.quality[rows, choice].mean()))
        )
    return points


def judge(points: list[tuple[float, float]], table: RoutingTable) -> dict[str, float | None]:
    """AIQ over the single members' cost range; the share of GPT-4's cost at which the hull
    reaches GPT-4's quality (None: never); the hull's quality at half GPT-4's cost."""
    costs, qualities = zip(*points, strict=True)
    single_cost, single_quality = table.cost.mean(axis=0), table.quality.mean(axis=0)
    gpt4 = table.members.index(GPT4)
    reach = metrics.cost_to_reach(costs, qualities, float(single_quality[gpt4]))
    half = metrics.hull_at(metrics.hull(costs, qualities), 0.5 * float(single_cost[gpt4]))
    return {
        "aiq": round(
            metrics.aiq(costs, qualities, float(single_cost.min()), float(single_cost.max())), 4
        ),
        "gpt4_cost_share": None if reach is None else round(reach / float(single_cost[gpt4]), 3),
        "quality_at_half_gpt4_cost": round(half, 4),
    }


def group_means(values: Floats, groups: npt.NDArray[Any]) -> Floats:
    """Each row replaced by the mean of its group's rows."""
    out = np.zeros_like(values, dtype=float)
    for g in np.unique(groups):
        out[groups == g] = values[groups == g].mean(axis=0)
    return out


def ceilings(table: RoutingTable, prior: RoutingTable) -> dict[str, dict[str, float | None]]:
    """(a): each ceiling's figures on ``table`` with its outcomes known; ``prior`` (train)
    gives the task-only reference and the simulated signal's prior."""
    tasks = np.array(table.labels)
    right = (table.quality > 0.5).sum(axis=1)
    task_q, task_c = group_means(table.quality, tasks), group_means(table.cost, tasks)
    hard = np.char.add(tasks.astype(str), right.astype(str))
    hard_q, hard_c = group_means(table.quality, hard), group_means(table.cost, hard)
    ref_q, ref_c = by_task(prior, tasks, prior.quality), by_task(prior, tasks, prior.cost)
    members = table.members
    single = [
        (float(table.cost[:, j].mean()), float(table.quality[:, j].mean()))
        for j in range(len(members))
    ]
    policies: dict[str, Pick] = {
        "task-only reference (train means; learns the task, reads no answer)": lambda lam: (
            np.argmax(ref_q - lam * ref_c, axis=1)
        ),
        "task-level oracle (this split's task means)": lambda lam: np.argmax(
            task_q - lam * task_c, axis=1
        ),
        "task-level oracle, each prompt's actual cost": lambda lam: np.argmax(
            task_q - lam * table.cost, axis=1
        ),
        "task x difficulty oracle (knows how many members are right)": lambda lam: np.argmax(
            hard_q - lam * hard_c, axis=1
        ),
        "per-prompt oracle": lambda lam: np.argmax(
            table.quality - lam * table.cost - 1e-9 * table.cost, axis=1
        ),
    }
    out = {"zero router (single members' hull)": judge(single, table)}
    for name, pick in policies.items():
        out[name] = judge(frontier(table, pick), table)
    return out


def by_task(fit: RoutingTable, tasks: npt.NDArray[Any], values: Floats) -> Floats:
    """(n, members): each row's task mean of ``values`` over ``fit``'s prompts."""
    fit_tasks = np.array(fit.labels)
    return np.stack([values[fit_tasks == t].mean(axis=0) for t in tasks])


def signal_needed(
    table: RoutingTable, prior: RoutingTable, aurocs: list[float], seeds: int = 5
) -> list[dict[str, Any]]:
    """AIQ a router would reach given, per member, a calibrated signal of within-task AUROC
    ``a`` about that member's outcome (independent Gaussian noise; the exact posterior on
    the train split's task prior). Simulated from the outcomes: a bound, not a router."""
    tasks = np.array(table.labels)
    prior_q = np.clip(by_task(prior, tasks, prior.quality), 1e-3, 1 - 1e-3)
    cost = by_task(prior, tasks, prior.cost)
    right = (table.quality > 0.5).astype(float)
    rows = []
    for auroc in aurocs:
        delta = math.sqrt(2) * _probit(auroc)
        runs = []
        for seed in range(seeds):
            z = delta * right + np.random.default_rng(seed).standard_normal(right.shape)
            logit = np.log(prior_q / (1 - prior_q)) + delta * z - delta**2 / 2
            posterior = 1 / (1 + np.exp(-logit))
            runs.append(
                judge(
                    frontier(table, lambda lam, p=posterior: np.argmax(p - lam * cost, axis=1)),
                    table,
                )
            )
        aiqs = [float(r["aiq"] or 0) for r in runs]
        shares = [r["gpt4_cost_share"] for r in runs]
        rows.append(
            {
                "auroc": auroc,
                "aiq": round(float(np.mean(aiqs)), 4),
                "aiq_sd": round(float(np.std(aiqs)), 4),
                "gpt4_cost_share": None
                if None in shares
                else round(float(np.mean([float(s) for s in shares if s is not None])), 3),
            }
        )
    return rows


def _probit(p: float) -> float:
    """The standard normal quantile (bisection on erf; p in (0, 1))."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p else (lo, mid)
    return (lo + hi) / 2


def surface(prompts: list[str]) -> Floats:
    """Surface features: the question's characters, words, digits, lines, options, and the
    whole prompt's characters (logs of counts)."""
    rows = []
    for prompt in prompts:
        q = question(prompt)
        options = sum(line[:2] in ("A)", "B)", "C)", "D)", "E)") for line in q.splitlines())
        counts = [
            len(q),
            len(q.split()),
            sum(c.isdigit() for c in q),
            q.count("\n"),
            options,
            len(last_turn(prompt)),
        ]
        rows.append([math.log1p(c) for c in counts])
    return np.array(rows, dtype=float)


def features(train: RoutingTable, test: RoutingTable) -> dict[str, tuple[Floats, Floats]]:
    """Feature sets for (b), each as (train rows, test rows)."""
    minilm, static = (
        CachedEncoder(get_encoder("minilm")),
        CachedEncoder(get_encoder("minilm-static")),
    )
    sets: dict[str, tuple[Floats, Floats]] = {}
    for name, encoder, view in (
        ("prompt, full MiniLM", minilm, lambda ps: list(ps)),
        ("question, full MiniLM", minilm, lambda ps: [question(p) for p in ps]),
        ("question, static", static, lambda ps: [question(p) for p in ps]),
    ):
        sets[name] = (
            encoder.encode(view(train.prompts)).astype(float),
            encoder.encode(view(test.prompts)).astype(float),
        )
        print(f"encoded: {name}", flush=True)
    a, b = surface(train.prompts), surface(test.prompts)
    mean, sd = a.mean(axis=0), a.std(axis=0) + 1e-9
    sets["surface"] = ((a - mean) / sd, (b - mean) / sd)
    q = sets["question, full MiniLM"]
    sets["question, full MiniLM + surface"] = (
        np.hstack([q[0], sets["surface"][0]]),
        np.hstack([q[1], sets["surface"][1]]),
    )
    return sets


def targets(table: RoutingTable, cheap: int) -> dict[str, npt.NDArray[np.bool_]]:
    """(b)'s targets for a task's rows, given its cheap member."""
    right = table.quality > 0.5
    gpt4 = table.members.index(GPT4)
    return {
        "cheap member right": right[:, cheap],
        "GPT-4 right, cheap member wrong": right[:, gpt4] & ~right[:, cheap],
        "at most 5 of 11 right": right.sum(axis=1) <= 5,
    }


def auroc_interval(
    y: npt.NDArray[np.bool_], p: Floats, draws: int = 300
) -> tuple[float, float, float]:
    """AUROC and its 95% bootstrap interval."""
    rng = np.random.default_rng(0)
    values = []
    for _ in range(draws):
        i = rng.integers(0, len(y), len(y))
        if y[i].any() and not y[i].all():
            values.append(roc_auc_score(y[i], p[i]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(roc_auc_score(y, p)), float(low), float(high)


def predictability(
    train: RoutingTable, test: RoutingTable, sets: dict[str, tuple[Floats, Floats]]
) -> list[dict[str, Any]]:
    """(b): per task, target and feature set, out-of-fold AUROC on train and AUROC on test."""
    rows = []
    tr_tasks, te_tasks = np.array(train.labels), np.array(test.labels)
    for task in sorted(set(train.labels or [])):
        a, b = tr_tasks == task, te_tasks == task
        cheap = cheap_member(train.subset(np.flatnonzero(a)))
        ya, yb = (
            targets(train.subset(np.flatnonzero(a)), cheap),
            targets(test.subset(np.flatnonzero(b)), cheap),
        )
        for target in ya:
            for name, (xa, xb) in sets.items():
                model = LogisticRegression(C=1.0, max_iter=3000)
                oof = np.zeros(int(a.sum()))
                for fit, held in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(
                    xa[a], ya[target]
                ):
                    oof[held] = model.fit(xa[a][fit], ya[target][fit]).predict_proba(xa[a][held])[
                        :, 1
                    ]
                on_test = model.fit(xa[a], ya[target]).predict_proba(xb[b])[:, 1]
                auc, low, high = auroc_interval(yb[target], on_test)
                rows.append(
                    {
                        "task": task,
                        "cheap_member": train.members[cheap],
                        "target": target,
                        "features": name,
                        "base_rate_train": round(float(ya[target].mean()), 3),
                        "auroc_train_oof": round(float(roc_auc_score(ya[target], oof)), 3),
                        "auroc_test": round(auc, 3),
                        "auroc_test_95": [round(low, 3), round(high, 3)],
                    }
                )
        print(f"predictability: {task}", flush=True)
    return rows


def cheap_member(table: RoutingTable) -> int:
    """The task's best member among those costing at most 15% of GPT-4's mean cost."""
    cost, quality = table.cost.mean(axis=0), table.quality.mean(axis=0)
    affordable = cost <= 0.15 * cost[table.members.index(GPT4)]
    return int(np.flatnonzero(affordable)[np.argmax(quality[affordable])])


def within_task(
    fit: RoutingTable, xf: Floats, held: RoutingTable, xh: Floats
) -> tuple[Floats, Floats]:
    """(c): per task and member, a logistic model's chance of a right answer, shrunk halfway
    to the task's mean; and the task-only reference's (both (held rows, members))."""
    ftasks, htasks = np.array(fit.labels), np.array(held.labels)
    predicted, reference = np.zeros(held.quality.shape), by_task(fit, htasks, fit.quality)
    for task in np.unique(htasks):
        a, b = ftasks == task, htasks == task
        for j in range(len(fit.members)):
            y = fit.quality[a, j] > 0.5
            p = (
                y.mean()
                if y.all() or not y.any()
                else LogisticRegression(C=0.3, max_iter=3000)
                .fit(xf[a], y)
                .predict_proba(xh[b])[:, 1]
            )
            predicted[b, j] = 0.5 * p + 0.5 * reference[b, j]
    return predicted, reference


def by_difficulty(
    fit: RoutingTable, xf: Floats, held: RoutingTable, xh: Floats, k: int = 25, levels: int = 3
) -> tuple[Floats, Floats]:
    """(d) Each prompt's difficulty predicted as the mean number of members right on its ``k``
    most similar training questions of its task (a training prompt leaves itself out); per
    task and difficulty level (tertiles of the training prompts' scores), each member's mean
    quality and cost on that level's training prompts. Both (held rows, members)."""
    ftasks, htasks = np.array(fit.labels), np.array(held.labels)
    right = (fit.quality > 0.5).sum(axis=1).astype(float)
    quality, cost = np.zeros(held.quality.shape), np.zeros(held.cost.shape)
    for task in np.unique(htasks):
        a, b = np.flatnonzero(ftasks == task), np.flatnonzero(htasks == task)
        own = xf[a] @ xf[a].T
        np.fill_diagonal(own, -np.inf)
        score_f = right[a][np.argsort(-own, axis=1)[:, :k]].mean(axis=1)
        score_h = right[a][np.argsort(-(xh[b] @ xf[a].T), axis=1)[:, :k]].mean(axis=1)
        edges = np.quantile(score_f, np.arange(1, levels) / levels)
        level_f, level_h = np.digitize(score_f, edges), np.digitize(score_h, edges)
        for level in range(levels):
            rows = a[level_f == level] if (level_f == level).any() else a
            quality[b[level_h == level]] = fit.quality[rows].mean(axis=0)
            cost[b[level_h == level]] = fit.cost[rows].mean(axis=0)
    return quality, cost


def what_it_buys(
    train: RoutingTable,
    test: RoutingTable,
    x: tuple[Floats, Floats],
    question_vectors: tuple[Floats, Floats],
) -> dict[str, Any]:
    """(c) and (d) out-of-fold on train and once on test; costs are the fitted rows' task
    means (the difficulty router's: its level's)."""
    folds = np.random.default_rng(0).permutation(len(train)) % FOLDS
    oof = {name: (np.zeros(train.quality.shape), np.zeros(train.cost.shape)) for name in NAMES}
    for fold in range(FOLDS):
        fit, held = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        parts = _three(
            train.subset(fit),
            (x[0][fit], question_vectors[0][fit]),
            train.subset(held),
            (x[0][held], question_vectors[0][held]),
        )
        for name, (q, c) in parts.items():
            oof[name][0][held], oof[name][1][held] = q, c
    once = _three(train, (x[0], question_vectors[0]), test, (x[1], question_vectors[1]))
    out: dict[str, Any] = {}
    for split, table, predicted in (("train_oof", train, oof), ("test", test, once)):
        out[split] = {
            name: judge(
                frontier(table, lambda lam, q=q, c=c: np.argmax(q - lam * c, axis=1)), table
            )
            for name, (q, c) in predicted.items()
        }
    return out


NAMES = (
    "task-only reference",
    "within-task logistic (question + surface)",
    "difficulty from the 25 nearest training questions (3 levels a task)",
)


def _three(
    fit: RoutingTable,
    fit_features: tuple[Floats, Floats],
    held: RoutingTable,
    held_features: tuple[Floats, Floats],
) -> dict[str, tuple[Floats, Floats]]:
    """Each router's (predicted quality, expected cost) on ``held``; features are
    (question + surface, question) rows of the fitted and the held prompts."""
    p, r = within_task(fit, fit_features[0], held, held_features[0])
    cost = by_task(fit, np.array(held.labels), fit.cost)
    return {
        NAMES[0]: (r, cost),
        NAMES[1]: (p, cost),
        NAMES[2]: by_difficulty(fit, fit_features[1], held, held_features[1]),
    }


def plot(figures: dict[str, Any], test: RoutingTable, path: Path) -> None:
    """Left: the test ceilings' AIQ against the target; right: AIQ against within-task AUROC."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    bars = dict(figures["ceilings"]["test"])
    learned = figures["within_task_router"]["test"]
    bars |= {f"{k} (a router)": v for k, v in learned.items() if "reference" not in k}
    names = sorted(bars, key=lambda n: bars[n]["aiq"])
    values = [bars[n]["aiq"] for n in names]
    left.barh(range(len(names)), values, color="#4c72b0")
    left.set_yticks(range(len(names)), [n.split(" (")[0] for n in names], fontsize=8)
    left.axvline(TARGET_AIQ, color="crimson", linestyle="--", label=f"target {TARGET_AIQ}")
    left.set_xlim(0.8, 1.0)
    left.set_xlabel(f"AIQ on RouterBench test ({len(test)} prompts)")
    left.legend(loc="lower right", fontsize=8)
    rows = figures["signal_needed"]["test"]
    right.plot(
        [r["auroc"] for r in rows],
        [r["aiq"] for r in rows],
        marker="o",
        label="simulated calibrated signal",
    )
    right.axhline(TARGET_AIQ, color="crimson", linestyle="--", label=f"target {TARGET_AIQ}")
    measured = [
        r["auroc_test"]
        for r in figures["predictability"]
        if r["features"] == "question, full MiniLM + surface"
    ]
    right.axvspan(
        min(measured),
        max(measured),
        color="grey",
        alpha=0.25,
        label="measured within-task AUROC (test)",
    )
    right.set_xlabel("within-task AUROC of a per-member signal")
    right.set_ylabel("AIQ on test")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    splits = routerbench(default_root())
    train, test = splits.train, splits.test
    figures: dict[str, Any] = {
        "command": "PYTHONPATH=src python bench/routerbench_ceiling.py",
        "protocol": "ceilings read each split's outcomes (bounds, not routers); predictability "
        f"and the within-task router: {FOLDS}-fold out-of-fold on train, then once fitted on "
        "train and scored on test",
        "ceilings": {"train": ceilings(train, train), "test": ceilings(test, train)},
    }
    aurocs = [0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    figures["signal_needed"] = {
        "train": signal_needed(train, train, aurocs),
        "test": signal_needed(test, train, aurocs),
    }
    sets = features(train, test)
    figures["predictability"] = predictability(train, test, sets)
    figures["within_task_router"] = what_it_buys(
        train, test, sets["question, full MiniLM + surface"], sets["question, full MiniLM"]
    )
    out = ROOT / "bench" / "results" / "routerbench_ceiling.json"
    out.write_text(json.dumps(figures, indent=1) + "\n")
    plot(figures, test, out.with_suffix(".png"))
    report(figures)


def report(figures: dict[str, Any]) -> None:
    """Print the tables."""
    console = Console()
    table = Table(title="(a) ceilings (outcomes known) and the task-only reference")
    for column in ("split", "AIQ", "GPT-4's quality at x its cost", "quality at half", "policy"):
        table.add_column(column)
    for split in ("train", "test"):
        for name, r in figures["ceilings"][split].items():
            share, half = r["gpt4_cost_share"], r["quality_at_half_gpt4_cost"]
            table.add_row(split, f"{r['aiq']:.4f}", str(share), f"{half:.3f}", name)
    console.print(table)
    table = Table(title=f"signal needed on test (targets: AIQ {TARGET_AIQ}, {TARGET_SHARE})")
    for column in ("within-task AUROC", "AIQ", "sd over 5 draws", "GPT-4 cost share"):
        table.add_column(column)
    for r in figures["signal_needed"]["test"]:
        row = (r["auroc"], r["aiq"], r["aiq_sd"], r["gpt4_cost_share"])
        table.add_row(*(str(x) for x in row))
    console.print(table)
    table = Table(title="(b) within-task AUROC")
    for column in ("task", "target", "features", "train out-of-fold", "test [95%]"):
        table.add_column(column)
    for r in figures["predictability"]:
        test = f"{r['auroc_test']:.3f} {r['auroc_test_95']}"
        table.add_row(r["task"], r["target"], r["features"], f"{r['auroc_train_oof']:.3f}", test)
    console.print(table)
    table = Table(title="(c) what the within-task signal buys")
    for column in ("split", "AIQ", "GPT-4's quality at x its cost", "router"):
        table.add_column(column)
    for split, rows in figures["within_task_router"].items():
        for name, r in rows.items():
            table.add_row(split, f"{r['aiq']:.4f}", str(r["gpt4_cost_share"]), name)
    console.print(table)


if __name__ == "__main__":
    main()
