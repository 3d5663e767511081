"""A request's record as the ledger's writer commits it: its ``requests`` row and its
chain segment, serialized once, on the request's thread, before the write is queued.

:func:`prepare` turns a :class:`~pinfactory.ledger.base.LedgerEntry` and its audit
events into a :class:`Prepared` record: the row's values in :data:`REQUEST_INSERT`'s
order (less ``sealed_seq``, known only at commit) and each event as an
:class:`~pinfactory.ledger.chain.Unsealed` entry, the row's figures sealed in the last
(the closing ``response`` / ``error`` entry holds them under ``row``; otherwise a
``row`` entry is appended). What is left for the writer's thread is the chain's links
and the inserts. The journal (``durability: journal``) stores the prepared record as
is, so a replay commits exactly the bodies the live process would have.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pinfactory.ledger.base import AuditEvent, LedgerEntry, to_nano
from pinfactory.ledger.chain import CLOSING_KINDS, Unsealed, row_figures, unsealed

REQUEST_COLUMNS = (
    'request_id, time, unit, "user", model, member, router, reason, input_tokens, '
    "output_tokens, cost_nusd, latency_ms, status, error, stream, tags, correlation_id"
)
REQUEST_INSERT = (
    f"INSERT INTO requests ({REQUEST_COLUMNS}, sealed_seq) VALUES ({', '.join('?' * 18)})"
)
"""The ``requests`` insert: a prepared row, then the seq of the entry sealing it."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request's write: ``row`` (the ``requests`` values, :data:`REQUEST_COLUMNS`
    order, ``cost_nusd`` in nano-USD, ``tags`` as JSON) and its chain ``entries``."""

    row: tuple[Any, ...]
    entries: list[Unsealed]


def prepare(entry: LedgerEntry, events: Sequence[AuditEvent]) -> Prepared:
    """The record of ``entry`` and its ``events``, the row's figures sealed in the last."""
    nusd = to_nano(entry.cost_usd)
    row = (
        entry.request_id,
        entry.time,
        entry.unit,
        entry.user,
        entry.model,
        entry.member,
        entry.router,
        entry.reason,
        entry.input_tokens,
        entry.output_tokens,
        nusd,
        entry.latency_ms,
        entry.status,
        entry.error,
        int(entry.stream),
        json.dumps(list(entry.tags)) if entry.tags else "[]",
        entry.correlation_id,
    )
    figures = row_figures(entry, nusd)
    last = events[-1] if events else None
    if last is not None and last.kind in CLOSING_KINDS and last.request_id == entry.request_id:
        entries = [unsealed(e.kind, e.request_id, e.payload, e.time) for e in events[:-1]]
        closing = {**last.payload, "row": figures}
        entries.append(unsealed(last.kind, last.request_id, closing, last.time))
    else:
        entries = [unsealed(e.kind, e.request_id, e.payload, e.time) for e in events]
        entries.append(unsealed("row", entry.request_id, figures, entry.time))
    return Prepared(row, entries)
