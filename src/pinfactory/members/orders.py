"""The orders member: order status from a SQLite database, read-only.

The demo database ships with the package (``pinfactory/data/orders.db``,
orders 1001 to 1050, built by ``scripts/make_orders_db.py``); a team file can
point ``settings.database`` at another file with the same ``orders`` table.

Queries run directly on the event loop rather than through
``asyncio.to_thread``: each is one primary-key lookup on a local file, which
takes microseconds, less than handing it to a worker thread would. A
deployment with a slow or remote disk would want the thread.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pinfactory.errors import MemberError
from pinfactory.members.base import Completion, Member
from pinfactory.members.registry import register
from pinfactory.request import Request

SQLITE_MAX_INTEGER = 2**63 - 1
ASK_FOR_NUMBER = (
    'Which order? Please give the order number, for example "What\'s the status of order 1042?".'
)

_COLUMNS = "id, status, customer, placed_on, updated_on, item, carrier, tracking"
ORDER_WORDS = r"(?:order|pedido|commande|bestellung|ordine|encomenda)"
"""'order' in English, Spanish, French, German, Italian and Portuguese."""
_NUMBER_AFTER_ORDER = re.compile(
    rf"\b{ORDER_WORDS}\b(?:\s+(?:number|num|no\.?|id|nr\.?|n[ºo°]\.?))?\s*(?:[:#]\s*)?(\d+)\b",
    re.IGNORECASE,
)
_HASH_NUMBER = re.compile(r"#\s*(\d+)\b")
_MENTIONS_ORDER = re.compile(rf"\b{ORDER_WORDS}s?\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.,])\d+(?![\d.,]?\d)")


class OrdersSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database: str | None = Field(
        default=None, description="SQLite file with an orders table; default: the packaged demo"
    )


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    status: str
    customer: str
    placed_on: str
    updated_on: str
    item: str
    carrier: str | None = None
    tracking: str | None = None


def find_order_number(text: str) -> int | None:
    """The order number a question asks about, or None.

    In order of trust: a number right after "order" ("order 1042", "order
    #1007", "order number 1050"), then a "#1042", then the only number in a
    text that mentions orders at all ("my order, it's 1042"). The first such
    number wins when there are several.
    """
    for pattern in (_NUMBER_AFTER_ORDER, _HASH_NUMBER):
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    if _MENTIONS_ORDER.search(text):
        numbers = _NUMBER.findall(text)
        if len(numbers) == 1:
            return int(numbers[0])
    return None


def order_in_conversation(request: Request) -> int | None:
    """The order the last user turn asks about; in a follow-up that names only a number
    ("And what about 1043?") after turns about orders, that number."""
    found = find_order_number(request.text)
    if found is not None:
        return found
    earlier = [m.content for m in request.messages if m.role == "user"][:-1]
    numbers = _NUMBER.findall(request.text)
    if len(numbers) == 1 and any(find_order_number(t) is not None for t in earlier):
        return int(numbers[0])
    return None


def lookup(db: sqlite3.Connection, order_id: int) -> Order | None:
    """The order with ``order_id``, or None; one parameterised primary-key query."""
    if not 0 <= order_id <= SQLITE_MAX_INTEGER:
        return None
    row = db.execute(f"SELECT {_COLUMNS} FROM orders WHERE id = ?", (order_id,)).fetchone()
    return Order(*row) if row is not None else None


def describe(order: Order) -> str:
    """One sentence for a customer: status first, then the facts that back it."""
    facts = f"placed {order.placed_on} by {order.customer}: {order.item}"
    if order.updated_on != order.placed_on:
        facts += f"; updated {order.updated_on}"
    if order.carrier:
        facts += f"; carrier {order.carrier}"
        if order.tracking:
            facts += f", tracking {order.tracking}"
    return f"Order {order.id} is {order.status} ({facts})."


def not_found(order_id: int) -> str:
    return f"There is no order {order_id} in the orders database."


def default_database() -> Traversable:
    """The packaged demo database (a resource of ``pinfactory``; may sit in a zip)."""
    return files("pinfactory") / "data" / "orders.db"


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open ``path`` with ``mode=ro``: SQLite itself refuses every write.

    ``check_same_thread=False`` lets a sync wrapper drive the member from
    another thread; reads on one connection are serialised by SQLite.
    """
    uri = path.resolve().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        db.execute("PRAGMA query_only = ON")
        db.execute(f"SELECT {_COLUMNS} FROM orders LIMIT 1").fetchall()
    except sqlite3.Error:
        db.close()
        raise
    return db


@register
class OrdersMember(Member):
    """Answers "what's the status of order N?" from the orders database, and nothing else."""

    kind = "orders"
    Settings = OrdersSettings
    settings: OrdersSettings

    _db: sqlite3.Connection | None = None
    _resources: ExitStack | None = None

    async def open(self) -> None:
        if self._db is not None:
            return
        resources = ExitStack()
        try:
            if self.settings.database is not None:
                path = Path(self.settings.database)
            else:  # a real file even when the package is installed zipped
                path = resources.enter_context(as_file(default_database()))
            self._db = connect_read_only(path)
        except (sqlite3.Error, OSError) as exc:
            resources.close()
            where = self.settings.database or default_database()
            raise MemberError(self.name, f"cannot open orders database {where}: {exc}") from exc
        self._resources = resources

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._resources is not None:
            self._resources.close()
            self._resources = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise MemberError(self.name, "member is not open")
        return self._db

    async def complete(self, request: Request) -> Completion:
        order_id = order_in_conversation(request)
        if order_id is None:
            return self.local_completion(request, ASK_FOR_NUMBER, model="orders", refused=True)
        try:
            order = lookup(self.db, order_id)
        except sqlite3.Error as exc:
            raise MemberError(self.name, f"orders database query failed: {exc}") from exc
        text = describe(order) if order is not None else not_found(order_id)
        return self.local_completion(request, text, model="orders")
