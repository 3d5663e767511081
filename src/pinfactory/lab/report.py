"""Write a grid's results: ``results.csv``, ``sweeps.csv``, ``report.md`` and PNG plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pinfactory.lab import metrics
from pinfactory.lab.grid import Cell, GridSpec, splits_for
from pinfactory.routing.table import RoutingTable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIRST = [
    "dataset",
    "router",
    "family",
    "train_size",
    "seed",
    "accuracy",
    "quality",
    "cost_usd",
    "aiq",
]


def interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for one value)."""
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
    if len(array) == 0:
        return math.nan, math.nan
    if len(array) == 1:
        return float(array[0]), 0.0
    # scipy (seconds to import) loads only for the report's significance tests
    from scipy import stats

    half = stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array))
    return float(array.mean()), float(half)


def _size_order(size: str) -> float:
    return math.inf if size == "all" else float(size)


def write(spec: GridSpec, done: list[tuple[Cell, dict[str, Any]]], out: Path) -> Path:
    """Write every output file; returns the report's path."""
    rows = pd.DataFrame([result["row"] for _, result in done])
    rows = rows[[*FIRST, *(c for c in rows.columns if c not in FIRST)]]
    rows.to_csv(out / "results.csv", index=False)
    sweeps = pd.DataFrame(
        [
            {k: result["row"][k] for k in ("dataset", "router", "train_size", "seed")}
            | {k: p[k] for k in ("knob", "accuracy", "quality", "cost_usd")}
            for _, result in done
            for p in result["sweep"]
        ]
    )
    sweeps.to_csv(out / "sweeps.csv", index=False)
    lines = [f"# {spec.name}", "", spec.description.strip(), ""]
    lines += [
        f"{len(rows)} cells: routers x train sizes x seeds; quality and accuracy are means over "
        "the test split, `cost_usd` the mean cost per query, +/- a 95% t-interval over seeds.",
        "",
    ]
    for dataset in rows["dataset"].unique():
        part = rows[rows["dataset"] == dataset]
        cells = [(c, r) for c, r in done if c.dataset.name == dataset]
        lines += _dataset_section(str(dataset), part, cells, out)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if half else f"{mean:.{digits}f}"


def _dataset_section(
    dataset: str, part: pd.DataFrame, cells: list[tuple[Cell, dict[str, Any]]], out: Path
) -> list[str]:
    lines = [f"## {dataset}", ""]
    sizes = sorted(part["train_size"].unique(), key=_size_order)
    largest = sizes[-1]
    two = "apgr" in part.columns and part["apgr"].notna().any()
    priced = metrics.costs_differ(splits_for(cells[0][0]).test.cost.mean(axis=0))
    columns = ["router", "train size", "accuracy", "quality", "cost USD/query", "AIQ"]
    columns += ["APGR", "CPT(50%)", "CPT(80%)"] if two else ["cost to best-single quality"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for (router, size), group in sorted(
        part.groupby(["router", "train_size"]), key=lambda kv: (kv[0][0], _size_order(kv[0][1]))
    ):
        cells_ = [str(router), str(size)]
        cells_ += [_fmt(*interval(group[m].tolist())) for m in ("accuracy", "quality")]
        cells_ += [_fmt(*interval(group["cost_usd"].tolist()), digits=6)]
        cells_ += [_fmt(*interval(group["aiq"].tolist()))]
        if two:
            cells_ += [_fmt(*interval(group[m].tolist())) for m in ("apgr", "cpt50", "cpt80")]
        else:
            share = group["cost_share_of_best_single"].dropna()
            cells_ += [
                _fmt(*interval(share.tolist())) + " of its cost"
                if len(share)
                else "never"
                if priced
                else "-"
            ]
        lines.append("| " + " | ".join(cells_) + " |")
    lines.append("")
    lines += _headline(part, largest, splits_for(cells[0][0]).test)
    figure = _plot_curves(dataset, cells, largest, out)
    lines += [f"![cost-quality curves]({figure})", ""]
    if len(sizes) > 1:
        figure = _plot_sizes(dataset, part, sizes, cells[0][0].per_member, out)
        lines += [f"![accuracy by training size]({figure})", ""]
    lines += _versus_rules(part, sizes)
    lines += _disagreements(part, cells, largest)
    return lines


def _headline(part: pd.DataFrame, largest: str, test: RoutingTable) -> list[str]:
    """The best real router (baselines are bounds or references, not candidates): by AIQ
    when the members' costs differ, else by accuracy, where AIQ means nothing."""
    cost, quality = test.cost.mean(axis=0), test.quality.mean(axis=0)
    at = part[part["train_size"] == largest]
    means = at.groupby("router")[["accuracy", "quality", "cost_usd", "aiq"]].mean()
    candidates = means.drop(
        index=[r for r in set(at[at["family"] == "baseline"]["router"]) if r in means.index]
    )
    lines: list[str] = []
    priced = metrics.costs_differ(cost)
    swept = candidates["aiq"].dropna()
    if priced and len(swept):
        zero = metrics.aiq(cost, quality, float(cost.min()), float(cost.max()))
        best = str(swept.idxmax())
        lines += [
            f"At train size {largest}: best AIQ **{best}** {swept.max():.3f}"
            + f", zero router (hull of the single members) {zero:.3f}"
            + (f", oracle {means.loc['oracle', 'aiq']:.3f}" if "oracle" in means.index else "")
            + ".",
            "",
        ]
    elif not priced:
        lines += [
            f"Every member costs the same (${float(cost[0]):.6f} a query): AIQ and "
            "cost-to-quality are undefined, routers are compared by accuracy.",
            "",
        ]
    if len(candidates):
        accuracy = candidates["accuracy"]
        top = str(accuracy.idxmax())
        reference = ""
        if "best_single" in means.index:
            reference = f" (best single member {means.loc['best_single', 'accuracy']:.3f})"
        lines += [
            f"At train size {largest}: most accurate router **{top}** "
            f"{accuracy.max():.3f}{reference}.",
            "",
        ]
    return lines


def _subplots(size: tuple[float, float]) -> tuple[Figure, Any]:
    """A figure and its axes, drawn off-screen (no display needed)."""
    # matplotlib (over 1 s to import) loads only to draw a plot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def _save(figure: Figure, out: Path, name: str) -> str:
    """Write the figure as ``out/name`` and free it; returns ``name``."""
    # matplotlib: loaded already by _subplots, which drew the figure
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(out / name, dpi=110)
    plt.close(figure)
    return name


def _plot_curves(
    dataset: str, cells: list[tuple[Cell, dict[str, Any]]], largest: str, out: Path
) -> str:
    figure, axes = _subplots((8, 5.5))
    seed = min(c.seed for c, _ in cells)
    table = splits_for(cells[0][0]).test
    single_cost, single_quality = table.cost.mean(axis=0), table.quality.mean(axis=0)
    axes.scatter(
        single_cost, single_quality, color="grey", marker="s", s=18, label="single members"
    )
    for name, cost, quality in zip(table.members, single_cost, single_quality, strict=True):
        axes.annotate(name.split("/")[-1], (cost, quality), fontsize=6, color="grey")
    zero = metrics.hull(single_cost, single_quality)
    axes.plot(zero[:, 0], zero[:, 1], color="grey", linestyle=":", label="zero router (hull)")
    for cell, result in cells:
        if str(cell.train_size) != largest or cell.seed != seed:
            continue
        cost = [p["cost_usd"] for p in result["sweep"]]
        quality = [p["quality"] for p in result["sweep"]]
        (line,) = axes.plot(cost, quality, linestyle="", marker="o", markersize=3, alpha=0.5)
        vertices = metrics.hull(cost, quality)
        axes.plot(
            vertices[:, 0],
            vertices[:, 1],
            color=line.get_color(),
            label=cell.router.name
            + (f" (AIQ {result['row']['aiq']:.3f})" if result["row"]["aiq"] is not None else ""),
        )
    axes.set_xscale("log")
    axes.set_xlabel("mean cost per query (USD, log)")
    axes.set_ylabel("mean quality")
    axes.set_title(f"{dataset}: cost-quality, train size {largest}, seed {seed}")
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, out, f"{dataset}-cost-quality.png")


def _plot_sizes(
    dataset: str, part: pd.DataFrame, sizes: list[str], per_member: bool, out: Path
) -> str:
    figure, axes = _subplots((8, 5))
    x = np.arange(len(sizes))
    for router, group in part.groupby("router"):
        if router == "oracle":
            continue
        stats = [interval(group[group["train_size"] == s]["accuracy"].tolist()) for s in sizes]
        means = [m for m, _ in stats]
        halves = [h for _, h in stats]
        style = "--" if group["family"].iloc[0] == "rules" else "-"
        axes.errorbar(
            x,
            means,
            yerr=halves,
            label=str(router),
            linestyle=style,
            marker="o",
            capsize=3,
            markersize=4,
        )
    axes.set_xticks(x, [str(s) for s in sizes])
    axes.set_xlabel("training examples" + (" per member" if per_member else ""))
    axes.set_ylabel("routing accuracy (95% CI over seeds)")
    axes.set_title(f"{dataset}: rules vs learned")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return _save(figure, out, f"{dataset}-accuracy-by-size.png")


def _versus_rules(part: pd.DataFrame, sizes: list[str]) -> list[str]:
    """Per training size: the rules, the best learned router, and which is ahead."""
    rules = part[part["family"] == "rules"]
    learned = part[part["family"] == "learned"]
    if rules.empty or learned.empty or len(sizes) < 2:
        return []
    rule_name = str(rules["router"].iloc[0])
    lines = [
        "### Rules vs the best learned router, per training size (accuracy, 95% CI over seeds)",
        "",
        f"| train size | {rule_name} | best learned | its accuracy | difference | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for size in sizes:
        ours = rules[rules["train_size"] == size]["accuracy"].tolist()
        at = learned[learned["train_size"] == size]
        if not ours or at.empty:
            continue
        best = str(at.groupby("router")["accuracy"].mean().idxmax())
        theirs = at[at["router"] == best].sort_values("seed")["accuracy"].to_numpy()
        base = rules[rules["train_size"] == size].sort_values("seed")["accuracy"].to_numpy()
        diff = theirs - base if len(theirs) == len(base) else theirs - base.mean()
        mean, half = interval(diff.tolist())
        verdict = (
            "learned ahead"
            if mean - half > 0
            else "rules ahead"
            if mean + half < 0
            else "tied (interval spans 0)"
        )
        lines.append(
            f"| {size} | {_fmt(*interval(ours))} | {best} | {_fmt(*interval(theirs.tolist()))} "
            f"| {mean:+.3f} ± {half:.3f} | {verdict} |"
        )
    return [*lines, ""]


def _disagreements(
    part: pd.DataFrame, cells: list[tuple[Cell, dict[str, Any]]], largest: str, limit: int = 30
) -> list[str]:
    rules = [c for c, _ in cells if c.router.resolved_family == "rules"]
    learned = part[(part["family"] == "learned") & (part["train_size"] == largest)]
    if not rules or learned.empty:
        return []
    best = str(learned.groupby("router")["accuracy"].mean().idxmax())
    seed = min(c.seed for c, _ in cells)

    def choices(name: str) -> list[int] | None:
        for cell, result in cells:
            if cell.router.name == name and str(cell.train_size) == largest and cell.seed == seed:
                return result["choices"]  # type: ignore[no-any-return]
        return None

    rule_name = rules[0].router.name
    ours, theirs = choices(best), choices(rule_name)
    if ours is None or theirs is None:
        return []
    table = splits_for(rules[0]).test
    right = table.quality.max(axis=1)
    rows = np.arange(len(table))
    ok_learned = np.isclose(table.quality[rows, ours], right)
    ok_rules = np.isclose(table.quality[rows, theirs], right)
    differ = np.flatnonzero(np.asarray(ours) != np.asarray(theirs))
    lines = [
        f"### Disagreements: {best} (train size {largest}, seed {seed}) vs {rule_name}",
        "",
        f"They route {len(differ)} of {len(table)} test prompts differently: {best} right and "
        f"rules wrong on {int((ok_learned & ~ok_rules).sum())}, rules right and {best} wrong on "
        f"{int((~ok_learned & ok_rules).sum())}, both wrong on "
        f"{int((~ok_learned & ~ok_rules)[differ].sum())}. A sample, to read:",
        "",
        "| prompt | label | right member | rules | learned |",
        "|---|---|---|---|---|",
    ]
    rng = np.random.default_rng(0)
    sample = rng.choice(differ, size=min(limit, len(differ)), replace=False)
    for i in sorted(sample):
        text = table.prompts[i].replace("|", "/").replace("\n", " ")[:90]
        label = table.labels[i] if table.labels else ""
        target = table.members[table.oracle()[i]]
        lines.append(
            f"| {text} | {label} | {target} | {table.members[theirs[i]]} "
            f"| {table.members[ours[i]]} |"
        )
    return [*lines, ""]
