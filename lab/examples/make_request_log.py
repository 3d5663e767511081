"""Write lab/examples/request_log.csv: a deterministic example request log (300 rows).

Everything went to one frontier model, as a monolithic deployment runs. The prompts are
CLINC150 validation utterances (customer-assistant traffic; ``label`` is the domain, or
``general`` for out-of-scope) and MMLU questions (``label`` general). Token counts:
the prompt's estimate (four characters a token) and a fixed-seed answer length.

    python lab/examples/make_request_log.py [DATA_ROOT]
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(root: Path) -> None:
    rng = random.Random(4)
    clinc = json.loads((root / "clinc150" / "data_full.json").read_text())
    domains = json.loads((root / "clinc150" / "domains.json").read_text())
    owner = {intent: domain for domain, intents in domains.items() for intent in intents}
    rows = []
    for text, intent in rng.sample(clinc["val"], 180) + rng.sample(clinc["oos_val"], 20):
        rows.append((text, rng.randint(30, 120), owner.get(intent, "general")))
    subjects = sorted((root / "routellm" / "mmlu").glob("mmlu_*.csv"))
    for path in rng.sample(subjects, 20):
        with path.open(newline="", encoding="utf-8") as handle:
            prompts = [r["prompt"] for r in csv.DictReader(handle)]
        for prompt in rng.sample(prompts, 5):
            rows.append((prompt, rng.randint(1, 8), "general"))
    rng.shuffle(rows)
    with (HERE / "request_log.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "input_tokens", "output_tokens", "model", "label"])
        for prompt, output_tokens, label in rows:
            tokens = max(1, -(-len(prompt) // 4))
            writer.writerow([prompt, tokens, output_tokens, "frontier", label])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data")
