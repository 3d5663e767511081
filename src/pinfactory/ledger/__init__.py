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


def open_ledger(
    location: str, durability: Durability = "full", journal: str | None = None
) -> Ledger:
    """The store for a ledger location: a PostgreSQL DSN, else a SQLite path.

    ``journal`` is the folder ``durability: journal`` keeps its journal in (default:
    ``ledger.journal.journal_folder``).
    """
    # psycopg loads only for a PostgreSQL ledger: a SQLite gateway and the CLI start faster
    from pinfactory.ledger.postgres import PostgresLedger, is_dsn

    if is_dsn(location):
        return PostgresLedger(location, durability, journal)
    return SQLiteLedger(location, durability, journal)
