"""Reading one answer's text pieces from a queue: what both generators' streams share.

The producer (the engine thread, or the task of an HTTP request) puts text pieces, then
one end item or an exception. The reader iterates the pieces; the end item is handed to
`ended` (why and how the answer ended), an exception is raised. Whatever ends the
iteration (the end, an error, the reader cancelled) closes the stream first.
"""

from __future__ import annotations

import asyncio


class Ending:
    """How an answer ended: why, and how many tokens it generated and reused from a
    cache. Filled in by whoever learns it (the stream from its end item, or the task of
    an HTTP request as the server's answer comes)."""

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self.cached_tokens = 0


class PieceStream:
    """Async iterator over the text pieces in `pieces`, telling how the answer ended
    (read live from `ending`); subclasses say how to close."""

    def __init__(self, pieces: asyncio.Queue[object], ending: Ending) -> None:
        self._pieces = pieces
        self._ending = ending
        self._done = False

    @property
    def finish_reason(self) -> str | None:
        return self._ending.finish_reason

    @property
    def completion_tokens(self) -> int:
        return self._ending.completion_tokens

    @property
    def cached_tokens(self) -> int:
        return self._ending.cached_tokens

    def ended(self, item: object) -> None:
        """Read the end item (the last one, not a text piece and not an exception)."""

    async def aclose(self) -> None:
        raise NotImplementedError

    def __aiter__(self) -> PieceStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._pieces.get()
        except asyncio.CancelledError:
            await self.aclose()
            raise
        if isinstance(item, str):
            return item
        if isinstance(item, BaseException):
            await self.aclose()
            raise item
        self.ended(item)
        await self.aclose()
        raise StopAsyncIteration
