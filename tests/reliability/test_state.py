"""The shared state's batched counters (``incr_many``), in the process and in a real Redis."""

from __future__ import annotations

from pinfactory.reliability.state import MemoryState, RedisState, SharedState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def counts_in_order(state: SharedState) -> None:
    assert await state.incr_many([]) == []
    assert await state.incr_many([("a", 1, 60.0), ("b", 5, 60.0), ("a", 2, 60.0)]) == [1, 5, 3]
    assert await state.incr("b", -5, 60.0) == 0
    assert await state.incr_many([("a", -3, 60.0), ("b", 7, 60.0)]) == [0, 7]
    assert await state.get_many(["a", "b"]) == ["0", "7"]


async def test_memory_state_counts_a_batch_in_order_and_each_key_expires() -> None:
    clock = Clock()
    state = MemoryState(clock=clock)
    await counts_in_order(state)
    await state.incr_many([("short", 1, 1.0), ("long", 1, 10.0)])
    clock.now += 2
    assert await state.incr_many([("short", 1, 1.0), ("long", 1, 10.0)]) == [1, 2]


async def test_redis_state_counts_a_batch_in_one_round_trip_with_ttls(
    redis_url: str, namespace: str
) -> None:
    state = RedisState(redis_url, namespace=f"pf:{namespace}")
    await state.open()
    try:
        await counts_in_order(state)
        await state.incr_many([("ttl", 1, 30.0)])
        ttl_ms = await state.client.pttl(f"pf:{namespace}:ttl")
        assert 0 < ttl_ms <= 30_000
    finally:
        await state.delete("a", "b", "ttl")
        await state.close()
