"""The ledger: every request, its cost and its outcome, durably recorded."""

from pinfactory.ledger.base import Ledger, LedgerEntry, SpendRow
from pinfactory.ledger.sqlite import SQLiteLedger

__all__ = ["Ledger", "LedgerEntry", "SQLiteLedger", "SpendRow", "open_ledger"]


def open_ledger(location: str) -> Ledger:
    """The store for a ledger location: a SQLite path (PostgreSQL DSNs come later)."""
    return SQLiteLedger(location)
