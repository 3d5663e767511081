"""Request ids: issued here, unique, and in the order requests arrive (the ledger's
indexes on them then grow at one edge)."""

from __future__ import annotations

import random
import re
import time

from pinfactory.request import Request, new_request_id


def test_ids_carry_their_millisecond_first_then_84_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    issued = [new_request_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", rid) for rid in issued)
    stamps = [int(rid[4:15], 16) for rid in issued]
    assert before <= stamps[0] and stamps[-1] <= after
    assert stamps == sorted(stamps)  # issued in order: sorted by time, whatever the bits
    assert len(set(issued)) == len(issued)


def test_seeding_the_global_generator_cannot_make_two_requests_share_an_id() -> None:
    random.seed(7)
    first = Request.from_text("hi").request_id
    random.seed(7)
    second = Request.from_text("hi").request_id
    assert first != second and first[15:] != second[15:]  # the random part differs too
    assert Request.from_text("hi").completion_id.startswith("chatcmpl-")
