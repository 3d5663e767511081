"""The ledger: every request, its audit chain, quota usage and reviews, durably recorded."""

from pinfactory.ledger.base import (
    AuditEvent,
    AuditRecord,
    ChainHead,
    Feedback,
    Ledger,
    LedgerEntry,
    Review,
    SpendRow,
)
from pinfactory.ledger.sqlite import SQLiteLedger
from pinfactory.ledger.writer import Durability

__all__ = [
    "AuditEvent",
    "AuditRecord",
    "ChainHead",
    "Feedback",
    "Ledger",
    "LedgerEntry",
    "Review",
    "SQLiteLedger",
    "SpendRow",
    "open_ledger",
]


def open_ledger(location: str, durability: Durability = "full") -> Ledger:
    """The store for a ledger location: a PostgreSQL DSN, else a SQLite path."""
    from pinfactory.ledger.postgres import PostgresLedger, is_dsn

    if is_dsn(location):
        return PostgresLedger(location, durability)
    return SQLiteLedger(location, durability)
