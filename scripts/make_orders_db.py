"""Build the demo orders database shipped at ``src/pinfactory/data/orders.db``.

Deterministic: a fixed seed, dates from a fixed start, and only
``random.Random.random()`` draws (the one part of :mod:`random` whose sequence
Python promises to keep across versions). Running it again writes the same rows.

    .venv/bin/python scripts/make_orders_db.py [--out PATH]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import string
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

SEED = 1042
FIRST_ID, LAST_ID = 1001, 1050
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "pinfactory" / "data" / "orders.db"

STATUSES = ("pending", "processing", "shipped", "delivered", "cancelled", "returned")
STATUS_WEIGHTS = (4, 5, 8, 10, 2, 2)
HAS_LEFT_WAREHOUSE = frozenset({"shipped", "delivered", "returned"})
FIRST_NAMES = (
    "Alex", "Bea", "Chidi", "Dana", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kemi", "Luca", "Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tariq",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Berg", "Costa", "Dube", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lee", "Moreau", "Nakamura", "Okafor", "Patel", "Ruiz", "Silva",
)  # fmt: skip
ITEMS = (
    "Espresso grinder", "Standing desk", "Noise-cancelling headphones", "Hiking boots",
    "Cast-iron skillet", "Mechanical keyboard", "Yoga mat", "Desk lamp", "Rain jacket",
    "Water filter", "Office chair", "Bluetooth speaker", "Chef's knife", "Backpack",
)  # fmt: skip
CARRIERS = ("UPS", "FedEx", "USPS", "DHL")
FIRST_DAY = date(2026, 9, 1)

# The row the docs and tests quote; everything else comes from the seed.
PINNED = {
    1042: {
        "status": "shipped",
        "customer": "Dana Ruiz",
        "placed_on": "2026-10-03",
        "updated_on": "2026-10-05",
        "item": "Espresso grinder",
        "carrier": "UPS",
    }
}

SCHEMA = """
CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN
                  ('pending', 'processing', 'shipped', 'delivered', 'cancelled', 'returned')),
    customer    TEXT NOT NULL,
    placed_on   TEXT NOT NULL,  -- ISO date
    updated_on  TEXT NOT NULL,  -- ISO date, on or after placed_on
    item        TEXT NOT NULL,
    carrier     TEXT,           -- set once the parcel has left the warehouse
    tracking    TEXT
);
"""
COLUMNS = ("id", "status", "customer", "placed_on", "updated_on", "item", "carrier", "tracking")

T = TypeVar("T")


def pick(rng: random.Random, options: Sequence[T], weights: Sequence[int] | None = None) -> T:
    """A choice made from one ``rng.random()`` draw (stable across Python versions)."""
    weights = weights or [1] * len(options)
    point = rng.random() * sum(weights)
    for option, weight in zip(options, weights, strict=True):
        point -= weight
        if point < 0:
            return option
    return options[-1]


def digits(rng: random.Random, count: int, alphabet: str = string.digits) -> str:
    return "".join(pick(rng, alphabet) for _ in range(count))


def tracking_number(rng: random.Random, carrier: str) -> str:
    if carrier == "UPS":
        return "1Z" + digits(rng, 6, string.ascii_uppercase + string.digits) + digits(rng, 10)
    if carrier == "FedEx":
        return digits(rng, 12)
    if carrier == "USPS":
        return "9400" + digits(rng, 18)
    return digits(rng, 10)


def make_rows(seed: int = SEED) -> list[tuple[object, ...]]:
    """Every order as a tuple in :data:`COLUMNS` order."""
    rng = random.Random(seed)
    rows: list[tuple[object, ...]] = []
    for order_id in range(FIRST_ID, LAST_ID + 1):
        placed = FIRST_DAY + timedelta(days=int(rng.random() * 61))
        row: dict[str, object] = {
            "status": pick(rng, STATUSES, STATUS_WEIGHTS),
            "customer": f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}",
            "placed_on": placed.isoformat(),
            "updated_on": (placed + timedelta(days=int(rng.random() * 9))).isoformat(),
            "item": pick(rng, ITEMS),
            "carrier": pick(rng, CARRIERS),
        }
        row.update(PINNED.get(order_id, {}))
        carrier = str(row["carrier"])
        tracking = tracking_number(rng, carrier)  # drawn for every row: pins shift nothing
        if row["status"] in HAS_LEFT_WAREHOUSE:
            row["tracking"] = tracking
        else:
            row["carrier"] = row["tracking"] = None
        rows.append((order_id, *(row[column] for column in COLUMNS[1:])))
    return rows


def build(out: Path, seed: int = SEED) -> Path:
    """Write the database to ``out`` (replacing it atomically) and return the path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    db = sqlite3.connect(partial)
    try:
        db.execute("PRAGMA page_size = 4096")
        db.execute("PRAGMA user_version = 1")
        db.executescript(SCHEMA)
        placeholders = ", ".join("?" for _ in COLUMNS)
        with db:
            db.executemany(f"INSERT INTO orders VALUES ({placeholders})", make_rows(seed))
        db.execute("VACUUM")
    finally:
        db.close()
    partial.replace(out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    print(build(args.out, args.seed))


if __name__ == "__main__":
    main()
