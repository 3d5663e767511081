"""The grounding checker on HaluEval QA: balanced accuracy, AUROC, calibration, latency.

Every item gives a right and a hallucinated answer with the same knowledge;
each is checked against the knowledge. ``--fit`` refits the packaged
confidence calibration on qa_one-turn (only); the figures for qa_multi-turn
are then held out. Writes bench/results/grounding_eval.json.

    python bench/grounding_eval.py [--json] [--fit]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from pinfactory.verify.confidence import Calibrator, expected_calibration_error
from pinfactory.verify.grounding import GroundingChecker

ROOT = Path(__file__).resolve().parents[1]
DATA = next(
    (p / "shared" / "data" / "halueval" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data" / "halueval",
)
FILES = ("qa_one-turn_data.json", "qa_multi-turn_data.json")
CALIBRATION = ROOT / "src" / "pinfactory" / "data" / "calibration.json"

FIVE_PASSAGES = [
    "Orders placed before 2 pm on a business day are dispatched the same day.",
    "Standard delivery within the United Kingdom takes 3 to 5 business days and costs 3.95 pounds.",
    "You can return most items within 30 days of delivery for a full refund.",
    "Every pin press carries a 2-year warranty from the date of delivery.",
    "Refunds are issued to the original payment method within 5 business days.",
]
FIVE_SENTENCES = (
    "Orders placed before 2 pm are dispatched the same day. Standard delivery takes 3 to 5 "
    "business days. You can return items within 30 days for a full refund. The pin press has "
    "a 3-year warranty. Refunds are paid in cash at the warehouse."
)


def evaluate(
    checker: GroundingChecker,
) -> dict[str, list[tuple[int, dict[str, float], float, bool, float]]]:
    results = {}
    for name in FILES:
        rows = [json.loads(line) for line in (DATA / name).read_text().splitlines()]
        out = []
        for row in rows:
            for answer, label in ((row["right_answer"], 1), (row["hallucinated_answer"], 0)):
                started = time.perf_counter()
                report = checker.assess(answer, [row["knowledge"]], question=row["question"])
                elapsed = (time.perf_counter() - started) * 1000
                passed = report.label in ("supported", "unverified")
                out.append((label, report.features, report.score, passed, elapsed))
        results[name] = out
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--fit", action="store_true", help="refit the packaged calibration")
    args = parser.parse_args()
    checker = GroundingChecker()
    checker.assess("warm up", ["warm up the encoder"])
    results = evaluate(checker)
    if args.fit:
        train = results[FILES[0]]
        Calibrator().fit([r[1] for r in train], [r[0] for r in train]).save(CALIBRATION)
    calibrator = Calibrator.load(CALIBRATION)
    per_file = {}
    everything = []
    for name, out in results.items():
        labels = [r[0] for r in out]
        probabilities = [calibrator.predict(r[1]) for r in out]
        per_file[name] = {
            "n": len(out),
            "balanced_accuracy": round(balanced_accuracy_score(labels, [r[3] for r in out]), 4),
            "auroc": round(roc_auc_score(labels, [r[2] for r in out]), 4),
            "calibrated_auroc": round(roc_auc_score(labels, probabilities), 4),
            "ece": round(expected_calibration_error(probabilities, labels), 4),
            "role": "tuning + calibration fit" if name == FILES[0] else "held out",
        }
        everything.extend(out)
    labels = [r[0] for r in everything]
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        checker.assess(FIVE_SENTENCES, FIVE_PASSAGES)
        timings.append((time.perf_counter() - started) * 1000)
    summary = {
        "n": len(everything),
        "balanced_accuracy": round(balanced_accuracy_score(labels, [r[3] for r in everything]), 4),
        "auroc": round(roc_auc_score(labels, [r[2] for r in everything]), 4),
        "ece": round(
            expected_calibration_error([calibrator.predict(r[1]) for r in everything], labels), 4
        ),
        "p50_ms": round(statistics.median(r[4] for r in everything), 3),
        "p95_ms": round(sorted(r[4] for r in everything)[int(0.95 * len(everything))], 3),
        "five_sentences_five_passages_p50_ms": round(statistics.median(timings), 3),
        "per_file": per_file,
        "checker": "GroundingChecker: coverage, word order, static MiniLM; no remote model",
    }
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "grounding_eval.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=None if args.json else 2))


if __name__ == "__main__":
    sys.exit(main())
