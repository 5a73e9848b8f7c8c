"""Graceful shutdown of running answers: on SIGTERM each gets a grace period, then ends.

Every streaming answer registers its `asyncio.Timeout` (the generation deadline).
`begin(grace_s)` pulls each deadline in to at most `grace_s` from now, and answers
that start later get the same cut-off, so no stream outlives the grace period and
each one ends with a final `shutting_down` event instead of a cut connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

SHUTTING_DOWN = "shutting_down"


class Draining:
    def __init__(self) -> None:
        self._cutoff: float | None = None  # loop time after which no answer may run
        self._timeouts: set[asyncio.Timeout] = set()
        self._event: asyncio.Event | None = None
        self._streams = 0

    @property
    def started(self) -> bool:
        return self._cutoff is not None

    @property
    def active(self) -> int:
        """Answers still streaming (from queued to their last event)."""
        return self._streams

    def enter(self) -> None:
        self._streams += 1

    def leave(self) -> None:
        self._streams -= 1

    async def wait(self) -> None:
        """Return once draining has started."""
        if self._event is None:
            self._event = asyncio.Event()
        if self.started:
            return
        await self._event.wait()

    def begin(self, grace_s: float) -> None:
        """Start draining (call on the event loop)."""
        loop = asyncio.get_running_loop()
        cutoff = loop.time() + grace_s
        self._cutoff = cutoff if self._cutoff is None else min(self._cutoff, cutoff)
        for timeout in self._timeouts:
            self._pull_in(timeout)
        if self._event is not None:
            self._event.set()

    def _pull_in(self, timeout: asyncio.Timeout) -> None:
        assert self._cutoff is not None
        when = timeout.when()
        if when is None or when > self._cutoff:
            timeout.reschedule(self._cutoff)

    @asynccontextmanager
    async def deadline(self, seconds: float) -> AsyncIterator[asyncio.Timeout]:
        """`asyncio.timeout(seconds)`, cut short when draining starts."""
        async with asyncio.timeout(seconds) as timeout:
            self._timeouts.add(timeout)
            if self._cutoff is not None:
                self._pull_in(timeout)
            try:
                yield timeout
            finally:
                self._timeouts.discard(timeout)
