"""What /readyz and /metrics read of the running services.

Readiness is a code per part (ok, not_running, unreachable, timeout, error): /readyz
needs no key, so the reasons behind them (exception texts, paths, the generation
server's address) go to the log, which an admin reads. The store and the journal are
pinged; the embedding model is checked by its thread; the generator says itself (an
external server is asked GET <url>/models, cached 5 s).

The /metrics body is both registries, with the queue depths, generation slots,
dropped audit records and the store's point count set first (the count waits
`PING_TIMEOUT_S` at most: a slow store must not break the scrape).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY, generate_latest

from appliance.server.services import Services

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0


class HealthChecks:
    """Readiness and the /metrics body, read from the running services at each call
    (an embedding switch replaces the embedder and the store)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def parts(self) -> dict[str, str]:
        """Each part's readiness code, in /readyz's order."""
        s = self._services
        checks = {
            "embedding_model": "ok" if s.embedder.alive else "not_running",
            "chat_model": await s.generator.readiness(),
        }
        for name, ping in (("vector_store", s.store.ping), ("journal", s.journal.ping)):
            checks[name] = await ping_code(name, ping)
        return checks

    async def exposition(self) -> bytes:
        """The Prometheus text of the default registry (HTTP metrics) and the appliance's."""
        s = self._services
        m = s.metrics
        m.queue_depth.labels("embedding").set(s.embedder.queue_depth())
        m.queue_depth.labels("generation").set(s.generator.queue_depth())
        m.queue_depth.labels("store").set(s.store.queue_depth())
        m.slots_active.set(s.generator.active)
        m.slots_total.set(s.generator.slots)
        m.audit_dropped.set(s.audit.dropped)
        with contextlib.suppress(Exception):
            m.store_points.set(await asyncio.wait_for(s.store.count(), PING_TIMEOUT_S))
        return generate_latest(REGISTRY) + generate_latest(m.registry)


async def ping_code(name: str, ping: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(ping(), PING_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness: the %s gave no answer within %ss", name, PING_TIMEOUT_S)
        return "timeout"
    except Exception as exc:
        log.warning("readiness: the %s failed its ping: %s", name, exc)
        return "error"
    return "ok"
