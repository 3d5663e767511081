"""A served worker settles its heap once started: what start-up built is frozen out of
the cyclic collector's walks, the young generation's threshold is raised, and a cycle
made afterwards is still collected."""

from __future__ import annotations

import gc
import weakref

from pinfactory.gateway.heap import YOUNG_THRESHOLD, settle_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_settling_freezes_the_heap_and_later_cycles_are_still_collected() -> None:
    threshold = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000  # the interpreter's own objects, at least
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *threshold[1:])
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle only the collector frees
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
