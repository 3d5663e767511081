"""A member's stream is booked once and leaves no reference cycle behind.

The tab lists the streams it has not booked yet, so a client that leaves can book
them; a booked stream leaves the list. Were it kept, every streamed request would
leave a tab <-> stream cycle that only the cyclic garbage collector frees, and its
collections (gen 2 walks every object of the process) would land on the stream path.
"""

from __future__ import annotations

import gc

import pytest

from pinfactory.errors import MemberError
from pinfactory.members import Completion
from pinfactory.members.calls import MemberStream, open_tab
from pinfactory.request import Message, Request
from pinfactory.testing.scripted import ScriptedMember, ScriptedSettings


def _request() -> Request:
    return Request(messages=(Message("user", "hello there"),), model="echo", stream=True)


async def test_a_finished_stream_is_booked_once_and_leaves_the_tab() -> None:
    tab = open_tab()
    stream = MemberStream(ScriptedMember.of("echo", lambda _: "hi"), _request(), "answer", tab)
    assert tab.streams == [stream]
    events = [event async for event in stream]
    assert isinstance(events[-1], Completion)
    assert tab.streams == []
    assert [(c.member, c.purpose, c.error) for c in tab.calls] == [("echo", "answer", None)]
    tab.abandon()  # a client leaving after the end books nothing more
    assert len(tab.calls) == 1


async def test_a_failed_stream_is_booked_with_its_error_and_leaves_the_tab() -> None:
    tab = open_tab()
    member = ScriptedMember("echo", ScriptedSettings(fail_always=True))
    stream = MemberStream(member, _request(), "answer", tab)
    with pytest.raises(MemberError):
        async for _ in stream:
            pass
    assert tab.streams == []
    assert [c.error for c in tab.calls] == ["member_failed"]


async def test_an_abandoned_stream_is_booked_by_the_tab_once() -> None:
    tab = open_tab()
    first = MemberStream(ScriptedMember.of("a", lambda _: "one two"), _request(), "answer", tab)
    second = MemberStream(ScriptedMember.of("b", lambda _: "three"), _request(), "tier", tab)
    assert isinstance(await anext(first), str)
    tab.abandon()
    tab.abandon()
    assert tab.streams == []
    assert sorted((c.member, c.error) for c in tab.calls) == [
        ("a", "client_closed_request"),
        ("b", "client_closed_request"),
    ]
    await first.aclose()
    await second.aclose()


async def test_a_streamed_request_leaves_no_cyclic_garbage() -> None:
    member = ScriptedMember.of("echo", lambda _: "hi")
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            tab = open_tab()
            async for _event in MemberStream(member, _request(), "answer", tab):
                pass
        del tab
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0
