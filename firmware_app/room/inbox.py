"""Where adapters hand over events: a thread-safe ``submit`` in front of one asyncio queue.

The OSDP stack calls back on its own thread and the MQTT adapter on the loop; both call
``submit(event)``.  The queue is bounded (``max_pending``) so a flood cannot eat memory: past it
events are counted as dropped (the watchdog reports the count), never silently lost.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol

from firmware_app.room.events import RoomEvent

__all__ = ["EventInbox", "EventSink", "RoomAdapter"]


class EventSink(Protocol):
    """What an adapter is given: ``submit`` may be called from any thread and never blocks."""

    def submit(self, event: RoomEvent) -> None: ...


class RoomAdapter(Protocol):
    """An event source the room service starts after links are ready and stops before the store
    closes (the OSDP control panel, the MQTT client)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class EventInbox:
    """One bounded queue of events, fed from any thread, drained by the room service."""

    def __init__(self, *, max_pending: int = 100_000) -> None:
        """Built on the event loop's thread, inside the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._queue: asyncio.Queue[RoomEvent] = asyncio.Queue()
        self._max_pending = max_pending
        self.dropped = 0

    def submit(self, event: RoomEvent) -> None:
        """Queue ``event``; safe from the loop thread and from foreign threads."""
        if threading.get_ident() == self._loop_thread_id:
            self._put(event)
        else:
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: RoomEvent) -> None:
        if self._queue.qsize() >= self._max_pending:
            self.dropped += 1  # only ever on the loop thread
            return
        self._queue.put_nowait(event)

    async def get(self) -> RoomEvent:
        """The next event (waits)."""
        return await self._queue.get()

    def get_nowait(self) -> RoomEvent | None:
        """The next event if one is queued, else None."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def pending(self) -> int:
        """Events waiting to be processed."""
        return self._queue.qsize()
