"""The inbox adapters hand events to: submit from foreign threads (the OSDP stack's callback
thread) arrives complete and in order; past its bound events are counted, not kept."""

from __future__ import annotations

import asyncio
import threading

from firmware_app.room import events as ev
from firmware_app.room.inbox import EventInbox


def test_submit_from_another_thread_arrives_in_order() -> None:
    async def scenario() -> list[ev.RoomEvent]:
        inbox = EventInbox()
        sent = [ev.PersonsSeen("cam", i) for i in range(500)]
        thread = threading.Thread(target=lambda: [inbox.submit(e) for e in sent])
        thread.start()
        got = [await asyncio.wait_for(inbox.get(), 5) for _ in sent]
        thread.join(5)
        return got

    got = asyncio.run(scenario())
    assert [e.count for e in got] == list(range(500))  # type: ignore[union-attr]


def test_a_full_inbox_counts_what_it_drops() -> None:
    async def scenario() -> tuple[int, int]:
        inbox = EventInbox(max_pending=10)
        for i in range(25):
            inbox.submit(ev.PersonsSeen("cam", i))
        return inbox.pending(), inbox.dropped

    assert asyncio.run(scenario()) == (10, 15)


def test_badge_numbers_and_keys_stay_out_of_repr() -> None:
    text = repr(ev.CardPresented("door", "reader", "37-1001", "h10301")) + repr(ev.KeypadEntry("door", "reader", "1234#"))
    assert "37-1001" not in text and "1234" not in text
