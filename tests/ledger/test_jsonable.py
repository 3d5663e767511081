"""``jsonable`` (orjson walking the value in C) gives exactly what the reference
conversion ``_jsonable`` gives, and an entry serialized once before it is sealed
(``Unsealed``) gets the body the canonical JSON of the whole entry would be: the audit
chain's bodies do not depend on which ran."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from decimal import Decimal
from typing import Any

import pytest

from pinfactory.ledger.base import ChainHead
from pinfactory.ledger.chain import (
    GENESIS,
    _jsonable,
    canonical,
    jsonable,
    link,
    seal,
    unsealed,
)
from pinfactory.outcome import Escalation, Sampling
from pinfactory.verify.base import Finding


class Colour(enum.Enum):
    RED = "red"
    TWO = 2


class Kind(enum.StrEnum):
    TOOL = "tool"


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    price: Decimal
    parts: tuple[Any, ...]
    score: float


FINDING = Finding("unsupported", "no passage says so", claim="x", passage="p", score=0.2)
VALUES: list[Any] = [
    {"a": 1, "b": [1, 2.5, None, True], "c": {"d": Decimal("0.0010")}},
    Part(Decimal("1.5"), (1, "x", Kind.TOOL), float("nan")),
    {"colour": Colour.RED, "n": Colour.TWO, "at": datetime.datetime(2026, 1, 1, 1, 2, 3)},
    {"id": uuid.UUID(int=5), "set": frozenset({3}), "inf": float("-inf")},
    Escalation("review", "low confidence", "review", 0.4, (FINDING,), answer="withheld"),
    Sampling(3, 0.7, 2 / 3),
    {1: "a key that is not a string"},
    {"big": 2**70},
    b"bytes",
    [{"nested": (Decimal(1), [Part(Decimal(0), (), 1.0)])}],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_fast_conversion_matches_the_reference(value: Any) -> None:
    fast, reference = jsonable(value), _jsonable(value)
    assert fast == reference or (fast != fast and reference != reference)
    assert canonical(fast) == canonical(reference)


def test_a_withheld_answer_stays_out_of_the_chain() -> None:
    escalation = Escalation("review", "low confidence", "review", 0.4, answer="withheld")
    assert "withheld" not in canonical(jsonable({"escalation": escalation}))


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_an_entry_serialized_before_sealing_gets_the_canonical_body(value: Any) -> None:
    entries = [unsealed("call", 'req_\u00e9"1', value, 1796035900.3057787) for _ in range(2)]
    rows, head = seal(entries, ChainHead(41, GENESIS))
    for seq, (row, prev) in enumerate(zip(rows, [GENESIS, rows[0][5]], strict=True), 42):
        whole = {
            "seq": seq,
            "request_id": 'req_\u00e9"1',
            "kind": "call",
            "time": 1796035900.3057787,
            "payload": _jsonable(value),
        }
        assert row == (seq, 'req_\u00e9"1', "call", canonical(whole), prev, link(prev, row[3]))
    assert head == ChainHead(43, rows[1][5])
