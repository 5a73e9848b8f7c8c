"""Admission to an external server: at most `slots` requests in flight, at most
`queue_size` waiting for one of them (first come, first served); one more raises
`Overloaded` at once, before any network call."""

from __future__ import annotations

import asyncio
import collections

from appliance.domain.errors import Overloaded


class Admission:
    """At most `slots` holders; at most `queue_size` waiting, served in order."""

    def __init__(self, slots: int, queue_size: int) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self.active_generations = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    def generation_depth(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    def reserve(self) -> asyncio.Future[None] | None:
        """A slot now (None), or a place in the queue (a future resolved when the slot is
        handed over). Raises `Overloaded` when the queue is full."""
        if self.active_generations < self.slots and not self.generation_depth():
            self.active_generations += 1
            return None
        if any(f.done() for f in self._waiting):  # places given up
            self._waiting = collections.deque(f for f in self._waiting if not f.done())
        if len(self._waiting) >= self.queue_size:
            raise Overloaded("generation")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        return fut

    async def acquire(self, place: asyncio.Future[None] | None) -> None:
        """Wait for the slot `reserve` queued for; a cancelled waiter leaves the queue (and
        passes on a slot handed over in the meantime)."""
        if place is None:
            return
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.release()
            raise

    def forfeit(self, place: asyncio.Future[None] | None) -> None:
        """Give back a reservation never waited for."""
        if place is None:
            self.release()
        elif not place.done():
            place.cancel()
        elif not place.cancelled():
            self.release()

    def release(self) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes on: `active_generations` stays
                return
        self.active_generations -= 1
