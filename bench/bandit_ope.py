"""The bandit router on a replayed RouterBench stream, and off-policy estimates against truth.

    PYTHONPATH=src python bench/bandit_ope.py [--epsilon 0.1] [--json]

Stream: all 3,150 RouterBench prompts (train and test splits), shuffled (seed 0), each
embedded with the static MiniLM. The bandit (pinfactory.routing.bandit.LinearBandit:
LinUCB + epsilon exploration, propensities recorded) chooses one of the 11 models per
prompt and sees only that model's outcome; reward = quality - lam x cost (lam = 20 per USD,
so GPT-4's mean cost weighs about 0.1). Regret is against the best fixed model in hindsight
and against the per-prompt oracle. Then the bandit's own log is used to estimate, off
policy, the value of candidate policies (each single model, the offline quality router at
several lambdas), by IPS and DR (pinfactory.lab.ope); their true value is known because
RouterBench has every model's outcome. Writes bench/results/bandit_ope.json and two PNGs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from pinfactory.lab import ope
from pinfactory.lab.datasets import default_root
from pinfactory.routing.bandit import LinearBandit
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.table_files import concat, load_routerbench

ROOT = Path(__file__).resolve().parents[1]
LAM = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    train, test = load_routerbench(default_root())
    table = concat([train, test])
    order = np.random.default_rng(0).permutation(len(table))
    stream = table.subset(order)
    scorer = QualityRouter("logistic", seed=0)
    vectors = scorer.embed(stream.prompts, cache=True).astype(np.float64)
    reward_table = stream.quality - LAM * stream.cost
    bandit = LinearBandit(
        members=list(stream.members),
        input_dims=vectors.shape[1],
        epsilon=args.epsilon,
        explore_share=args.epsilon,
        lam=LAM,
    )
    chosen = np.zeros(len(stream), dtype=np.int64)
    propensity = np.zeros(len(stream))
    for i in track(range(len(stream)), description="replaying the stream"):
        choice = bandit.choose(vectors[i], unit="bench")
        chosen[i], propensity[i] = choice.member, choice.propensity
        bandit.update(
            vectors[i],
            choice.member,
            stream.quality[i, choice.member],
            stream.cost[i, choice.member],
        )
    rows = np.arange(len(stream))
    got = reward_table[rows, chosen]
    best_fixed = int(np.argmax(reward_table.mean(axis=0)))
    regret_fixed = np.cumsum(reward_table[:, best_fixed] - got)
    regret_oracle = np.cumsum(reward_table.max(axis=1) - got)
    results: dict[str, Any] = {
        "prompts": len(stream),
        "lam_per_usd": LAM,
        "epsilon": args.epsilon,
        "bandit": {
            "mean_reward": float(got.mean()),
            "quality": float(stream.quality[rows, chosen].mean()),
            "cost_usd": float(stream.cost[rows, chosen].mean()),
            "explored_share": float(np.mean(propensity < 0.5)),
            "last_1000_mean_reward": float(got[-1000:].mean()),
        },
        "best_fixed": {
            "member": stream.members[best_fixed],
            "mean_reward": float(reward_table[:, best_fixed].mean()),
        },
        "oracle_mean_reward": float(reward_table.max(axis=1).mean()),
        "regret_vs_best_fixed": float(regret_fixed[-1]),
        "regret_vs_oracle": float(regret_oracle[-1]),
    }
    # off-policy: the bandit's log, candidate policies with known true value
    predicted = ope.cross_fitted_rewards(vectors, chosen, got, len(stream.members))
    offline = QualityRouter("logistic", seed=0).fit(train)
    quality_hat = offline.predicted_quality(vectors.astype(np.float32))
    candidates: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {
        f"single:{m.split('/')[-1]}": np.full(len(stream), j, dtype=np.int64)
        for j, m in enumerate(stream.members)
    }
    for lam in (0.0, 20.0, 100.0, 400.0):
        candidates[f"quality-logistic lam={lam:g}"] = np.asarray(
            (quality_hat - lam * offline.mean_cost_).argmax(axis=1), dtype=np.int64
        )
    estimates = []
    for name, target in candidates.items():
        compared = ope.compare(chosen, propensity, got, target, predicted)
        true = float(reward_table[rows, target].mean())
        estimates.append(
            {
                "policy": name,
                "true": true,
                "ips": [compared.ips.value, compared.ips.low, compared.ips.high],
                "dr": [compared.dr.value, compared.dr.low, compared.dr.high],
                "beats_live": compared.beats_live,
                "dr_covers_truth": compared.dr.low <= true <= compared.dr.high,
                "ips_covers_truth": compared.ips.low <= true <= compared.ips.high,
            }
        )
    results["ope"] = estimates
    results["ope_summary"] = {
        "dr_coverage": float(np.mean([e["dr_covers_truth"] for e in estimates])),
        "ips_coverage": float(np.mean([e["ips_covers_truth"] for e in estimates])),
        "dr_mean_abs_error": float(np.mean([abs(e["dr"][0] - e["true"]) for e in estimates])),
        "ips_mean_abs_error": float(np.mean([abs(e["ips"][0] - e["true"]) for e in estimates])),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bandit_ope.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(regret_fixed, regret_oracle, estimates, out)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    b = results["bandit"]
    print(
        f"bandit: mean reward {b['mean_reward']:.3f} (last 1000: {b['last_1000_mean_reward']:.3f}),"
        f" quality {b['quality']:.3f} at ${b['cost_usd']:.2e}; best fixed "
        f"{results['best_fixed']['member']} {results['best_fixed']['mean_reward']:.3f}; "
        f"oracle {results['oracle_mean_reward']:.3f}"
    )
    print(
        f"regret vs best fixed {results['regret_vs_best_fixed']:.1f}, "
        f"vs oracle {results['regret_vs_oracle']:.1f} over {len(stream)} prompts"
    )
    for e in estimates:
        print(
            f"{e['policy']:<40} true {e['true']:.3f}  IPS {e['ips'][0]:.3f} "
            f"[{e['ips'][1]:.3f}, {e['ips'][2]:.3f}]  DR {e['dr'][0]:.3f} "
            f"[{e['dr'][1]:.3f}, {e['dr'][2]:.3f}]"
        )
    print(json.dumps(results["ope_summary"]))


def plot(
    regret_fixed: np.ndarray[Any, Any],
    regret_oracle: np.ndarray[Any, Any],
    estimates: list[dict[str, Any]],
    out: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(regret_fixed, label="vs best fixed model (hindsight)")
    axes.plot(regret_oracle, label="vs per-prompt oracle")
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("prompts replayed")
    axes.set_ylabel("cumulative regret (reward units)")
    axes.set_title("LinUCB bandit router on RouterBench")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "bandit_regret.png", dpi=110)
    plt.close(figure)
    figure, axes = plt.subplots(figsize=(7, 5))
    true = [e["true"] for e in estimates]
    for key, marker in (("ips", "o"), ("dr", "s")):
        values = np.array([e[key] for e in estimates])
        axes.errorbar(
            true,
            values[:, 0],
            yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]],
            fmt=marker,
            label=key.upper(),
            alpha=0.7,
            capsize=2,
        )
    low, high = min(true), max(true)
    axes.plot([low, high], [low, high], color="grey", linestyle=":", label="estimate = truth")
    axes.set_xlabel("true value of the candidate policy (replayed with every outcome)")
    axes.set_ylabel("off-policy estimate from the bandit's log (95% interval)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "ope_vs_truth.png", dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
