"""The ledger keeps /v1/responses answers for ``previous_response_id``, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import asyncio

import pytest

from pinfactory.errors import LedgerError
from pinfactory.ledger import open_ledger
from pinfactory.ledger.base import StoredResponse


def test_a_stored_response_reads_back_and_an_unknown_id_is_none(location: str) -> None:
    kept = StoredResponse("resp_1", "req_1", "sales", 1_700_000_000.5, '{"messages": []}')

    async def go() -> tuple[StoredResponse | None, StoredResponse | None]:
        ledger = open_ledger(location)
        await ledger.open()
        try:
            await ledger.store_response(kept)
            return await ledger.stored_response("resp_1"), await ledger.stored_response("resp_2")
        finally:
            await ledger.close()

    found, missing = asyncio.run(go())
    assert found == kept and missing is None


def test_an_id_is_stored_once(location: str) -> None:
    first = StoredResponse("resp_1", "req_1", "sales", 1.0, "{}")

    async def go() -> None:
        ledger = open_ledger(location)
        await ledger.open()
        try:
            await ledger.store_response(first)
            await ledger.store_response(StoredResponse("resp_1", "req_2", "legal", 2.0, "{}"))
        finally:
            await ledger.close()

    with pytest.raises(LedgerError):
        asyncio.run(go())
