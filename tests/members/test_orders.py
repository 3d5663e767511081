"""The orders member against the real packaged SQLite database."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from pinfactory.errors import MemberError
from pinfactory.members.base import Price
from pinfactory.members.orders import (
    ASK_FOR_NUMBER,
    OrdersMember,
    OrdersSettings,
    default_database,
    find_order_number,
)
from pinfactory.members.registry import member_class
from pinfactory.request import Request, estimate_tokens

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_orders_db.py"
PACKAGED = Path(str(default_database()))
STATUSES = {"pending", "processing", "shipped", "delivered", "cancelled", "returned"}


@pytest.fixture
async def member() -> AsyncIterator[OrdersMember]:
    orders = OrdersMember("orders", price=Price(per_call=Decimal("0.000002")))
    await orders.open()
    yield orders
    await orders.close()


async def ask(member: OrdersMember, question: str) -> str:
    completion = await member.complete(Request.from_text(question))
    assert not completion.refused
    return completion.text


def table(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(schema, rows) of a database, for comparing content rather than bytes."""
    db = sqlite3.connect(path)
    try:
        schema = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        return schema, db.execute("SELECT * FROM orders ORDER BY id").fetchall()
    finally:
        db.close()


async def test_order_1042_is_shipped(member: OrdersMember) -> None:
    request = Request.from_text("What's the status of order 1042?")
    completion = await member.complete(request)
    assert completion.text.startswith("Order 1042 is shipped (placed 2026-10-03 by Dana Ruiz")
    assert "carrier UPS, tracking 1Z" in completion.text
    assert completion.model == "orders"
    assert completion.finish_reason == "stop"
    assert completion.usage.input_tokens == request.prompt_tokens
    assert completion.usage.output_tokens == estimate_tokens(completion.text)
    assert completion.cost_usd == Decimal("0.000002")


async def test_every_demo_order_exists(member: OrdersMember) -> None:
    for order_id in range(1001, 1051):
        text = await ask(member, f"where is my order #{order_id}")
        status = text.removeprefix(f"Order {order_id} is ").split(" ", 1)[0]
        assert status in STATUSES, text


def test_demo_rows_are_consistent() -> None:
    _, rows = table(PACKAGED)
    assert [row[0] for row in rows] == list(range(1001, 1051))
    assert {row[1] for row in rows} == STATUSES  # every status is demonstrated
    for _, status, customer, placed, updated, item, carrier, tracking in rows:
        assert customer and item and str(placed) <= str(updated)
        shipped = status in {"shipped", "delivered", "returned"}
        assert (carrier is not None and tracking is not None) == shipped


@pytest.mark.parametrize("order_id", [9999, 1000, 1051, 0, 10**30])
async def test_unknown_order_is_not_guessed(member: OrdersMember, order_id: int) -> None:
    text = await ask(member, f"What's the status of order {order_id}?")
    assert text == f"There is no order {order_id} in the orders database."


@pytest.mark.parametrize("question", ["Where is my order?", "What is 12 times 7?", ""])
async def test_no_order_number_is_refused(member: OrdersMember, question: str) -> None:
    completion = await member.complete(Request.from_text(question))
    assert completion.refused
    assert completion.finish_reason == "refused"
    assert completion.text == ASK_FOR_NUMBER
    assert "order number" in completion.text


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("What's the status of order 1042?", 1042),
        ("where is my order #1007", 1007),
        ("order 1050 status", 1050),
        ("Order number 1013 please", 1013),
        ("status of order no. 1020", 1020),
        ("ORDER: 1031", 1031),
        ("Has #1044 shipped yet?", 1044),
        ("my order hasn't arrived, it's 1005", 1005),
        ("order 1042; DROP TABLE orders", 1042),
        ("I ordered 2 lamps and 3 chairs", None),
        ("I ordered 2 lamps", None),
        ("orders 1001 and 1002", None),
        ("What is 12 times 7?", None),
        ("Where is my order?", None),
        ("my order of 2.5 kg", None),
    ],
)
def test_find_order_number(text: str, number: int | None) -> None:
    assert find_order_number(text) == number


@pytest.mark.parametrize(
    "question",
    [
        "order 1042; DROP TABLE orders",
        "order 1042 OR 1=1",
        "order #1042'); DELETE FROM orders; --",
    ],
)
async def test_sql_injection_text_is_harmless(member: OrdersMember, question: str) -> None:
    assert (await ask(member, question)).startswith("Order 1042 is shipped")
    assert member.db.execute("SELECT count(*) FROM orders").fetchone() == (50,)


async def test_database_is_opened_read_only(tmp_path: Path) -> None:
    copy = tmp_path / "orders.db"
    shutil.copyfile(PACKAGED, copy)
    before = copy.read_bytes()
    member = OrdersMember("orders", OrdersSettings(database=str(copy)))
    await member.open()
    try:
        assert member.db.execute("PRAGMA query_only").fetchone() == (1,)
        member.db.execute("PRAGMA query_only = OFF")  # what remains is the file opened mode=ro
        for statement in (
            "DELETE FROM orders",
            "UPDATE orders SET status = 'cancelled' WHERE id = 1042",
            "DROP TABLE orders",
        ):
            with pytest.raises(
                sqlite3.OperationalError, match="attempt to write a readonly database"
            ):
                member.db.execute(statement)
        assert (await ask(member, "order 1042")).startswith("Order 1042 is shipped")
    finally:
        await member.close()
    assert copy.read_bytes() == before


async def test_open_is_lazy_idempotent_and_closes() -> None:
    member = OrdersMember("orders")
    with pytest.raises(MemberError, match="not open"):
        await member.complete(Request.from_text("order 1042"))
    await member.open()
    db = member.db
    await member.open()
    assert member.db is db
    await member.close()
    await member.close()
    with pytest.raises(MemberError, match="not open"):
        _ = member.db


@pytest.mark.parametrize("make", ["missing", "no_table"])
async def test_bad_database_fails_on_open_with_the_path(tmp_path: Path, make: str) -> None:
    path = tmp_path / f"{make}.db"
    if make == "no_table":
        sqlite3.connect(path).close()
    member = OrdersMember("orders", OrdersSettings(database=str(path)))
    with pytest.raises(
        MemberError, match=re.escape(f"member 'orders': cannot open orders database {path}")
    ):
        await member.open()


def test_settings_are_strict() -> None:
    with pytest.raises(ValidationError, match="databse"):
        OrdersSettings.model_validate({"databse": "x.db"})
    assert OrdersSettings().database is None


def test_registered_as_orders() -> None:
    assert member_class("orders") is OrdersMember


def test_script_regenerates_the_same_database(tmp_path: Path) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    for out in (first, second):
        subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, timeout=60)
    assert first.read_bytes() == second.read_bytes()  # same SQLite library: same bytes
    assert table(first) == table(PACKAGED)  # any SQLite library: same content
