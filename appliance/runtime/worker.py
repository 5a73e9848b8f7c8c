"""A thread that owns one resource and serves jobs from a bounded priority queue.

The event loop never blocks on the resource: it submits a job and awaits an
asyncio future that the thread resolves with `call_soon_threadsafe`. A full
queue raises `Overloaded` at once (the API turns it into 503 + Retry-After).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from appliance.domain.errors import Overloaded, WorkerStopped

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

__all__ = [
    "BACKGROUND",
    "INTERACTIVE",
    "OwnerThread",
    "ThreadWorker",
    "post_to_loop",
    "resolve_future",
]

INTERACTIVE = 0
BACKGROUND = 1


_STOP = object()


def post_to_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> bool:
    """Call `fn(*args)` in `loop`'s thread; False when the loop is closed (nobody waits)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
        return True
    except RuntimeError:
        return False


def resolve_future(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class OwnerThread:
    """A daemon thread that first builds the resource it owns: `start` runs it and waits
    until it says `ready()`, or re-raises the error it gave to `failed()`."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.thread = threading.Thread(target=target, name=name, daemon=True)
        self.error: BaseException | None = None
        self._ready = threading.Event()

    def start(self, timeout: float, not_ready: str) -> None:
        """Start the thread and wait for its resource (`not_ready`: the refusal's words)."""
        self.thread.start()
        if not self._ready.wait(timeout):
            raise WorkerStopped(f"{not_ready} after {timeout:.0f}s")
        if self.error is not None:
            raise self.error

    def ready(self) -> None:
        self._ready.set()

    def failed(self, error: BaseException) -> None:
        self.error = error
        self._ready.set()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and self.error is None


class ThreadWorker(Generic[T]):
    """Owns `resource` (built by `factory` inside the thread) and runs jobs on it one at a time."""

    def __init__(self, name: str, factory: Callable[[], T], queue_size: int) -> None:
        self.name = name
        self._factory = factory
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue(
            maxsize=queue_size
        )
        self._seq = itertools.count()
        self._owner = OwnerThread(self._run, name)

    def start(self, timeout: float = 300.0) -> None:
        """Start the thread and wait until the resource is built (re-raising its error)."""
        self._owner.start(timeout, f"{self.name}: resource not ready")

    @property
    def alive(self) -> bool:
        return self._owner.alive

    def depth(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        try:
            resource = self._factory()
        except BaseException as exc:
            self._owner.failed(exc)
            return
        self._owner.ready()
        while True:
            _, _, item = self._queue.get()
            if item is _STOP:
                break
            job, loop, fut = item
            if fut is not None and fut.cancelled():
                continue
            try:
                result, error = job(resource), None
            except BaseException as exc:
                result, error = None, exc
            if fut is not None:
                post_to_loop(loop, resolve_future, fut, result, error)
        close = getattr(resource, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # pragma: no cover - best effort at shutdown
                log.exception("%s: closing resource failed", self.name)

    def submit(self, job: Callable[[T], R], priority: int = INTERACTIVE) -> asyncio.Future[R]:
        """Queue `job`; the returned future resolves in the caller's loop. May raise Overloaded."""
        if not self.alive:
            raise WorkerStopped(f"{self.name} is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        try:
            self._queue.put_nowait((priority, next(self._seq), (job, loop, fut)))
        except queue.Full:
            raise Overloaded(self.name) from None
        return fut

    async def call(self, job: Callable[[T], R], priority: int = INTERACTIVE) -> R:
        return await self.submit(job, priority)

    def stop(self, timeout: float = 10.0) -> None:
        if self._owner.thread.is_alive():
            # The stop marker sorts after all queued work of every priority.
            try:
                self._queue.put((99, next(self._seq), _STOP), timeout=timeout)
            except queue.Full:
                log.warning("%s: queue full at shutdown; leaving the daemon thread", self.name)
                return
            self._owner.thread.join(timeout)
