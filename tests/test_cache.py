"""The response cache's keys, scopes, TTL and semantic matching (no gateway here; the
gateway tests are in tests/gateway/test_cache_gateway.py)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from pinfactory.cache import CacheSpec, ResponseCache, calibrate_threshold
from pinfactory.gateway.server import free_port
from pinfactory.members.base import Completion, Usage
from pinfactory.outcome import Answer
from pinfactory.reliability.state import MemoryState, RedisState
from pinfactory.request import Message, Request
from pinfactory.routing.base import Decision


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def decision(member: str = "local") -> Decision:
    return Decision(member=member, reason="rule 'x'", router="rules")


def answered(request: Request, text: str = "Paris.", member: str = "local") -> Answer:
    completion = Completion(text, Usage(10, 5), Decimal("0.002"), "m")
    return Answer(request, decision(member), completion, 12.0)


def ask(text: str, **kwargs: Any) -> Request:
    return Request.from_text(text, **kwargs)


def test_an_exact_repeat_hits_and_records_the_saving() -> None:
    cache = ResponseCache(CacheSpec())
    first = ask("capital of France?", unit="sales")
    assert cache.lookup(first, decision()) is None
    assert cache.store(answered(first))
    hit = cache.lookup(ask("capital of France?", unit="sales"), decision())
    assert hit is not None
    assert (hit.completion.text, hit.record.kind, hit.record.similarity) == ("Paris.", "exact", 1.0)
    assert (hit.record.source, hit.record.saved_usd) == (first.request_id, Decimal("0.002"))
    assert hit.decision.reason.endswith(f"answered from the exact cache ({first.request_id})")


@pytest.mark.parametrize(
    "other",
    [
        ask("capital of France?", unit="support"),  # another unit
        ask("capital of France?", unit="sales", temperature=0.9),
        ask("capital of France?", unit="sales", tools=({"type": "function", "function": {}},)),
        ask("capital of France?", unit="sales", params={"seed": 7}),
        ask("capital of France?", unit="sales", model="frontier"),
        ask("capital of France?", unit="sales", cache=False),  # the request opts out
        ask("capital of France?", unit="sales", stream=True),
        Request(
            messages=(
                Message("system", "Answer in French."),
                Message("user", "capital of France?"),
            ),
            unit="sales",
        ),
    ],
)
def test_anything_else_that_differs_misses(other: Request) -> None:
    cache = ResponseCache(CacheSpec())
    cache.store(answered(ask("capital of France?", unit="sales")))
    assert cache.lookup(other, decision()) is None


def test_another_member_misses_and_members_limit_what_is_stored() -> None:
    cache = ResponseCache(CacheSpec(members=["frontier"]))
    request = ask("capital of France?")
    assert not cache.store(answered(request))  # local's answers are not kept
    assert cache.store(answered(request, member="frontier"))
    assert cache.lookup(request, decision("local")) is None
    assert cache.lookup(request, decision("frontier")) is not None


def test_units_share_only_when_the_team_says_so() -> None:
    cache = ResponseCache(CacheSpec(shared_units=True))
    cache.store(answered(ask("capital of France?", unit="sales")))
    assert cache.lookup(ask("capital of France?", unit="support"), decision()) is not None


def test_entries_expire_and_the_oldest_go_first() -> None:
    clock = Clock()
    cache = ResponseCache(CacheSpec(ttl_s=60, max_entries=2), clock=clock)
    for text in ("a?", "b?", "c?"):
        cache.store(answered(ask(text)))
    assert len(cache) == 2
    assert cache.lookup(ask("a?"), decision()) is None  # evicted
    clock.now = 59
    assert cache.lookup(ask("b?"), decision()) is not None
    clock.now = 61
    assert cache.lookup(ask("c?"), decision()) is None  # expired
    assert len(cache) == 1


def test_unfit_answers_are_not_stored() -> None:
    cache = ResponseCache(CacheSpec())
    refused = answered(ask("x"))
    refused.completion = replace(refused.completion, refused=True)
    assert not cache.store(refused)
    assert not cache.store(answered(ask("y"), text=""))


def test_a_paraphrase_hits_the_semantic_cache_but_other_numbers_never_do() -> None:
    cache = ResponseCache(CacheSpec(semantic=True, threshold=0.8))
    cache.store(answered(ask("What is the status of my order 1042?"), text="Shipped."))
    hit = cache.lookup(ask("what's the status of my order 1042"), decision())
    assert hit is not None and hit.record.kind == "semantic"
    assert 0.8 <= hit.record.similarity < 1.0
    assert cache.lookup(ask("What is the status of my order 1043?"), decision()) is None
    assert cache.lookup(ask("Write a poem about autumn leaves"), decision()) is None


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("Convert 10 miles to km", "Convert 10 km to miles"),  # cosine 1.000 (static MiniLM)
        ("Cancel my order", "Don't cancel my order"),  # 0.961
        ("Summarise this in French", "Summarise this in English"),  # 0.935
    ],
)
def test_a_close_wording_that_asks_something_else_misses(stored: str, asked: str) -> None:
    cache = ResponseCache(CacheSpec(semantic=True, threshold=0.9))
    cache.store(answered(ask(stored), text="stored answer"))
    vectors = cache.encoder.encode([stored, asked])
    assert float(vectors[0] @ vectors[1]) >= 0.9  # the embedding alone would serve it
    assert cache.lookup(ask(asked), decision()) is None
    assert cache.lookup(ask(stored), decision()) is not None


def test_the_threshold_is_the_lowest_that_keeps_wrong_hits_under_the_target() -> None:
    sims = [0.99, 0.97, 0.95, 0.93, 0.90, 0.85]
    right = [True, True, True, False, True, False]
    assert calibrate_threshold(sims, right, max_wrong=0.2) == 0.90  # 1 wrong in 5
    assert calibrate_threshold(sims, right, max_wrong=0.0) == 0.95
    assert calibrate_threshold([0.9], [False], max_wrong=0.0) == 1.0


async def test_workers_sharing_a_store_answer_each_others_repeats_and_paraphrases() -> None:
    clock = Clock()
    store = MemoryState(clock=clock)
    spec = CacheSpec(semantic=True, threshold=0.8, ttl_s=60)
    first, second = ResponseCache(spec, clock=clock), ResponseCache(spec, clock=clock)
    first.share(store)
    second.share(store)
    asked = ask("What is the status of my order 1042?", unit="sales")
    assert await second.find(asked, decision()) is None
    assert await first.save(answered(asked, text="Shipped."))
    clock.now = 10
    hit = await second.find(ask("What is the status of my order 1042?", unit="sales"), decision())
    assert hit is not None and hit.record.kind == "exact"
    assert (hit.completion.text, hit.record.source, hit.record.age_s) == (
        "Shipped.",
        asked.request_id,
        10,
    )
    third = ResponseCache(spec, clock=clock)  # a worker that starts later reads them too
    third.share(store)
    paraphrase = await third.find(
        ask("what's the status of my order 1042", unit="sales"), decision()
    )
    assert paraphrase is not None and paraphrase.record.kind == "semantic"
    assert await third.find(ask("status of my order 1043?", unit="sales"), decision()) is None
    assert (
        await third.find(ask("What is the status of my order 1042?", unit="support"), decision())
        is None
    )
    clock.now = 61  # expired in the store and in every worker
    assert await ResponseCache(spec, clock=clock).find(asked, decision()) is None
    late = ResponseCache(spec, clock=clock)
    late.share(store)
    assert await late.find(asked, decision()) is None


async def test_an_unreachable_store_makes_a_miss_never_an_error() -> None:
    away = RedisState(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)  # nothing listens
    await away.open()
    cache = ResponseCache(CacheSpec(semantic=True, threshold=0.8))
    cache.share(away)
    asked = ask("capital of France?")
    assert await cache.find(asked, decision()) is None
    assert await cache.save(answered(asked))  # kept in this worker
    hit = await cache.find(ask("capital of France?"), decision())
    assert hit is not None and hit.record.kind == "exact"
    await away.close()
