"""Blocking work on a synced folder, kept off the event loop.

A share may hang (an NFS server gone) or be huge, so every system call on it runs in a
thread and the API stays up. `run_owned` hands what a thread opened to the awaiting
task; if that task is cancelled first (a source removed, the server stopping), the
thread still runs to its end and what it opened is released then, never lost.
`watch_changes` sets up the watch (a walk of the whole folder, one inotify watch per
sub-folder) and waits for changes in a thread of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import TypeVar

from appliance.runtime.worker import post_to_loop

log = logging.getLogger(__name__)
T = TypeVar("T")
_ENDED = object()  # the watch thread's last word when it stops without an error


async def run_owned(body: Callable[[], T], release: Callable[[T], object] | None = None) -> T:
    """`body()` in a thread, run to its end even if the caller is cancelled meanwhile;
    then `release(result)` runs (in a thread) as nobody took the result (an fd is
    closed). A cancelled caller gets its CancelledError at once."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, body)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(partial(_give_back, release))
        raise


def _give_back(release: Callable[[T], object] | None, future: asyncio.Future[T]) -> None:
    if future.cancelled() or future.exception() is not None or release is None:
        return
    result = future.result()
    try:
        future.get_loop().run_in_executor(None, _quietly, release, result)
    except RuntimeError:  # the loop is closing and its threads are gone: release it here
        _quietly(release, result)


def _quietly(release: Callable[[T], object], result: T) -> None:
    try:
        release(result)
    except Exception:
        log.exception("releasing what a cancelled scan opened failed")


async def watch_changes(path: str, debounce_ms: int) -> AsyncGenerator[None, None]:
    """Yields after each batch of changes below `path` (those that came during the
    caller's work are one batch); raises what the watch raised (the folder gone). The
    watch runs in its own thread, asked to stop when the iterator is closed."""
    import watchfiles

    loop = asyncio.get_running_loop()
    news: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def tell(item: object) -> None:
        post_to_loop(loop, news.put_nowait, item)  # dropped once the loop is closed

    def run() -> None:
        try:
            for _ in watchfiles.watch(
                path, debounce=debounce_ms, recursive=True, stop_event=stop,
                raise_interrupt=False,
            ):  # fmt: skip
                tell(None)
        except Exception as exc:
            tell(exc)
        else:
            tell(_ENDED)

    threading.Thread(target=run, name="source-watch", daemon=True).start()
    try:
        while True:
            item = await news.get()
            while item is None and not news.empty():
                item = news.get_nowait()
            if isinstance(item, Exception):
                raise item
            if item is _ENDED:
                return
            yield None
    finally:
        stop.set()
