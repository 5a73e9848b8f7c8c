"""Whether the external server answers, as last seen, and a readiness check that asks it
again (GET {url}/models) at most every `RECHECK_S`: readiness probes may come often.

A failed request or check marks the server down; while it is known down (for `RECHECK_S`
after that), answers are refused at once instead of queueing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

RECHECK_S = 5.0  # a readiness answer (up or down) is reused this long


class ReadinessCache:
    """The last word on the server at `public_url`; `probe` asks it (None: it answers,
    else why not)."""

    def __init__(self, public_url: str, probe: Callable[[], Awaitable[str | None]]) -> None:
        self.public_url = public_url
        self._probe = probe
        self._checked_at = -math.inf
        self.problem: str | None = None  # why the server is down; None: up (or unknown)
        self._check_lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        """Whether the server answered last time (no request made here)."""
        return self.problem is None

    def known_down(self) -> bool:
        return self.problem is not None and time.monotonic() - self._checked_at < RECHECK_S

    def mark(self, problem: str | None) -> None:
        """Record what a request or check found: None, the server answers; else why not."""
        if problem is not None and self.problem is None:
            log.warning("generation server %s: %s", self.public_url, problem)
        elif problem is None and self.problem is not None:
            log.info("generation server %s answers again", self.public_url)
        self.problem = problem
        self._checked_at = time.monotonic()

    async def check(self) -> str:
        """The readiness check: "ok", or why the server is not usable (asked again
        after `RECHECK_S`)."""
        async with self._check_lock:
            if time.monotonic() - self._checked_at >= RECHECK_S:
                self.mark(await self._probe())
        if self.problem is None:
            return "ok"
        return f"{self.public_url}: {self.problem}"
