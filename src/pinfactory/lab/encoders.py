"""The encoder each lab router uses when its grid row names none, chosen from measurements.

``PYTHONPATH=src python bench/encoder_choice.py`` (two intent sets of 18 and 9 equal-cost
specialists made from CLINC150, 10 / 25 / 50 / all examples per member, 3 seeds) finds
the full MiniLM transformer more accurate than the static embedding distilled from it
for every router measured, at every size: semantic +5 to +13 points, logistic classifier
+6 to +11, kNN classifier +2 to +11, logistic quality +6 to +10 (``docs/lab.md``). On
RouterBench (``bench/routerbench_dev.py``, out of fold on the train split) the two give
the same AIQ within 0.002 for the quality, IRT and cluster routers. The lab replays
offline, where a slower encoder costs only the first encoding (vectors are cached on
disk), so its defaults follow accuracy. Live routing (team files, ``router fit``) keeps
the static default: it encodes a query in 0.16 ms, the full MiniLM in tens of ms.
"""

from __future__ import annotations

STATIC = "minilm-static"
FULL = "minilm"

LAB_ENCODERS: dict[str, str] = {
    "semantic": FULL,
    "hybrid": FULL,
    "classifier": FULL,
    "quality": FULL,
    "irt": STATIC,  # no gain on RouterBench; not measured on intent data
    "cluster": STATIC,  # no gain on RouterBench; not measured on intent data
    "gumbel": STATIC,  # not measured
    "cascade": STATIC,
}


def lab_encoder(kind: str) -> str:
    """The encoder a lab router of ``kind`` uses when its grid row names none."""
    return LAB_ENCODERS.get(kind, STATIC)


__all__ = ["LAB_ENCODERS", "lab_encoder"]
