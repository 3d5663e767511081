"""Documents to ground answers on: reading files, chunking, a SQLite store with hybrid search."""

from pinfactory.documents.reader import DocumentError, read_document
from pinfactory.documents.store import DocumentStore, Hit, IngestReport

__all__ = ["DocumentError", "DocumentStore", "Hit", "IngestReport", "read_document"]
