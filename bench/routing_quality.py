"""Routing quality on real data: CLINC150 domains, RouterBench routers and cascades.

    PYTHONPATH=src python bench/routing_quality.py [--json]

- CLINC150 (10 domains as routes, static MiniLM embeddings): test accuracy of
  the semantic router (k=3 nearest), logistic regression and 10-NN with 10, 50
  and all training examples per domain; the semantic router's out-of-scope
  rejection on ``oos_test`` once its thresholds are calibrated on val + oos_val
  (accuracy then counts abstentions as errors).
- RouterBench (train on ``*_train.csv``, score on the 945 complete test
  prompts): each learned router's quality and cost, GPT-4 alone, the oracle,
  and for the cost-aware routers the lowest share of GPT-4's cost at which
  their lambda sweep matches GPT-4's quality.
- Cascade mistral-7b -> mixtral-8x7b -> gpt-4 calibrated on train to a quality
  target, achieved on test: a prompt-only scorer (per-tier quality predictor)
  against a learned answer scorer (AcceptanceModel), each calibrated the old
  way (one half split) and with out-of-fold scores + a cross-validated margin.

Writes bench/results/routing_quality.json. Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from pinfactory.embeddings import get_encoder
from pinfactory.lab.datasets import default_root
from pinfactory.routing.acceptance import AcceptanceModel
from pinfactory.routing.cascade import Cascade, out_of_fold_scores
from pinfactory.routing.classifier import ClassifierRouter
from pinfactory.routing.gumbel import GumbelRouter
from pinfactory.routing.learned import CostAwareRouter, LearnedRouter
from pinfactory.routing.quality import QualityRouter
from pinfactory.routing.semantic import Route, SemanticRouter
from pinfactory.routing.table import RoutingTable
from pinfactory.routing.table_files import load_responses, load_tables, routerbench_files

ROOT = Path(__file__).resolve().parents[1]
GPT4 = "gpt-4-1106-preview"
CASCADE_TIERS = ["mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat", GPT4]
TARGETS = (0.78, 0.82, 0.85)
Floats = npt.NDArray[np.float64]


# -- CLINC150 ---------------------------------------------------------------------


def clinc(data_dir: Path) -> dict[str, Any]:
    data = json.loads((data_dir / "data_full.json").read_text())
    domains = json.loads((data_dir / "domains.json").read_text())
    domain_of = {intent: d for d, intents in domains.items() for intent in intents}

    def split(name: str) -> tuple[list[str], list[str]]:
        return [t for t, _ in data[name]], [domain_of[i] for _, i in data[name]]

    train, val, test = split("train"), split("val"), split("test")
    oos_val = [t for t, _ in data["oos_val"]]
    oos_test = [t for t, _ in data["oos_test"]]
    encoder = get_encoder("minilm-static")
    test_vectors = encoder.encode(test[0])
    rng = random.Random(0)
    results: dict[str, Any] = {}
    for per_domain in (10, 50, None):
        by_domain: dict[str, list[str]] = {}
        for text, label in zip(*train, strict=True):
            by_domain.setdefault(label, []).append(text)
        if per_domain is not None:
            by_domain = {d: rng.sample(ts, per_domain) for d, ts in by_domain.items()}
        texts = [t for ts in by_domain.values() for t in ts]
        labels = [d for d, ts in by_domain.items() for _ in ts]
        vectors = encoder.encode(texts)
        truth = np.array(test[1])
        routes = [Route(name=d, member=d, utterances=ts) for d, ts in by_domain.items()]
        semantic = SemanticRouter(routes, "fallback", k=3, threshold=-1.0)
        names = np.array(semantic.route_names)
        logistic = LogisticRegression(C=10.0, max_iter=3000).fit(vectors, labels)
        knn = KNeighborsClassifier(10, metric="cosine").fit(vectors, labels)
        key = "all" if per_domain is None else str(per_domain)
        results[key] = {
            "semantic": round(float(np.mean(names[semantic.predict(test[0])] == truth)), 3),
            "logistic": round(float(np.mean(logistic.predict(test_vectors) == truth)), 3),
            "knn10": round(float(np.mean(knn.predict(test_vectors) == truth)), 3),
        }
        if per_domain is None:
            semantic.fit(val[0] + oos_val, [*val[1], *[None] * len(oos_val)])
            chosen = semantic.predict(test[0])
            results["all"]["semantic_with_oos_thresholds"] = round(
                float(np.mean((chosen >= 0) & (names[chosen] == truth))), 3
            )
            results["all"]["oos_rejection"] = round(
                float(np.mean(semantic.predict(oos_test) == -1)), 3
            )
    return results


# -- RouterBench routers ------------------------------------------------------------


def point(table: RoutingTable, choice: npt.NDArray[np.int64]) -> tuple[float, float]:
    rows = np.arange(len(table))
    return float(table.quality[rows, choice].mean()), float(table.cost[rows, choice].mean())


def routerbench(train: RoutingTable, test: RoutingTable) -> dict[str, Any]:
    g = test.members.index(GPT4)
    gpt4_quality, gpt4_cost = float(test.quality[:, g].mean()), float(test.cost[:, g].mean())
    oracle_quality, oracle_cost = point(test, test.oracle())
    out: dict[str, Any] = {
        "test_prompts": len(test),
        "gpt4": {"quality": round(gpt4_quality, 3), "cost_usd": gpt4_cost},
        "oracle": {"quality": round(oracle_quality, 3), "cost_usd": oracle_cost},
    }
    routers: dict[str, LearnedRouter] = {
        "classifier": ClassifierRouter("logistic"),
        "classifier_mlp": ClassifierRouter("mlp"),
        "classifier_knn": ClassifierRouter("knn"),
        "quality": QualityRouter(),
        "quality_knn": QualityRouter("knn"),
        "gumbel": GumbelRouter(),
    }
    for name, router in routers.items():
        router.fit(train)
        quality, cost = point(test, router.predict(test.prompts))
        row: dict[str, Any] = {"quality": round(quality, 3), "cost_usd": cost}
        if isinstance(router, CostAwareRouter):
            sweep = router.sweep(test)
            row["best_quality"] = round(max(q for _, q, _ in sweep), 3)
            matching = [c for _, q, c in sweep if q >= gpt4_quality]
            row["gpt4_quality_at_pct_of_gpt4_cost"] = (
                round(100 * min(matching) / gpt4_cost, 1) if matching else None
            )
        out[name] = row
    return out


# -- cascades -----------------------------------------------------------------------


def restrict(table: RoutingTable, members: list[str]) -> RoutingTable:
    index = [table.members.index(m) for m in members]
    return RoutingTable(
        table.ids, table.prompts, members, table.quality[:, index], table.cost[:, index]
    )


def cascades(
    train: RoutingTable,
    test: RoutingTable,
    answers_train: dict[str, list[str]],
    answers_test: dict[str, list[str]],
) -> dict[str, Any]:
    train, test = restrict(train, CASCADE_TIERS), restrict(test, CASCADE_TIERS)
    row_of = {i: n for n, i in enumerate(train.ids)}

    def answers(table: RoutingTable) -> dict[str, list[str]]:
        return {m: [answers_train[m][row_of[i]] for i in table.ids] for m in CASCADE_TIERS}

    def prompt_scores(fit_on: RoutingTable, score: RoutingTable) -> Floats:
        model = QualityRouter().fit(fit_on)
        return model.predicted_quality(model.embed(score.prompts, cache=True))

    def answer_scores(fit_on: RoutingTable, score: RoutingTable) -> Floats:
        model = AcceptanceModel().fit(fit_on, answers(fit_on))
        return model.table_scores(score, answers(score))

    half = len(train) // 2
    first, second = train.subset(np.arange(half)), train.subset(np.arange(half, len(train)))
    out: dict[str, Any] = {
        "tiers": CASCADE_TIERS,
        "gpt4": {
            "quality": round(float(test.quality[:, 2].mean()), 3),
            "cost_usd": float(test.cost[:, 2].mean()),
        },
    }
    for name, fit_and_score in (("prompt_scorer", prompt_scores), ("answer_scorer", answer_scores)):
        started = time.perf_counter()
        half_scores = fit_and_score(first, second)
        if name == "prompt_scorer":
            half_test = fit_and_score(first, test)
            full_test = fit_and_score(train, test)
        else:
            model = AcceptanceModel().fit(first, answers(first))
            half_test = model.table_scores(test, answers_test)
            full_test = AcceptanceModel().fit(train, answers_train).table_scores(test, answers_test)
        oof = out_of_fold_scores(train, fit_and_score, folds=5)
        rows = []
        for target in TARGETS:
            old = Cascade(CASCADE_TIERS, scorer=lambda _r, _c: 1.0)
            old.calibrate(second, half_scores, quality_target=target)
            old_q, old_c, _ = Cascade.simulate(test, half_test, old.thresholds_)
            new = Cascade(CASCADE_TIERS, scorer=lambda _r, _c: 1.0)
            new.calibrate_cv(train, oof, quality_target=target)
            new_q, new_c, stop = Cascade.simulate(test, full_test, new.thresholds_)
            rows.append(
                {
                    "target": target,
                    "half_split": {"quality": round(old_q, 3), "cost_usd": old_c},
                    "oof_cv_margin": {
                        "quality": round(new_q, 3),
                        "cost_usd": new_c,
                        "margin": new.calibrated_["margin"],
                        "stopped_at_tier": np.bincount(stop, minlength=3).tolist(),
                    },
                }
            )
        out[name] = {"targets": rows, "seconds": round(time.perf_counter() - started, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args()
    data = default_root()
    started = time.perf_counter()
    results: dict[str, Any] = {"clinc150": clinc(data / "clinc150")}
    train_files = routerbench_files(data, "train")
    test_files = routerbench_files(data, "test")
    train, test = load_tables(train_files), load_tables(test_files)
    results["routerbench"] = routerbench(train, test)
    results["cascade"] = cascades(
        train,
        test,
        load_responses(train_files, restrict(train, CASCADE_TIERS)),
        load_responses(test_files, restrict(test, CASCADE_TIERS)),
    )
    results["seconds"] = round(time.perf_counter() - started, 1)
    out = ROOT / "bench" / "results" / "routing_quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
