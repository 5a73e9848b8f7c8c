"""The body of /metrics: both registries, with the gauges read from the services first.

Queue depths, generation slots, dropped audit records and the store's point count are
set at each scrape (the store's count waits `PING_TIMEOUT_S` at most: a slow store must
not break the scrape, the gauge keeps its last value).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from prometheus_client import REGISTRY, generate_latest

from appliance.observability.metrics import Metrics
from appliance.observability.readiness import PING_TIMEOUT_S


class Queued(Protocol):
    def queue_depth(self) -> int: ...


class Generating(Queued, Protocol):
    @property
    def active(self) -> int: ...
    @property
    def slots(self) -> int: ...


class Counted(Queued, Protocol):
    async def count(self, document_id: str | None = None) -> int: ...


class Audited(Protocol):
    @property
    def dropped(self) -> int: ...


class Scraped(Protocol):
    """What a scrape reads of the services."""

    @property
    def metrics(self) -> Metrics: ...
    @property
    def embedder(self) -> Queued: ...
    @property
    def generator(self) -> Generating: ...
    @property
    def store(self) -> Counted: ...
    @property
    def audit(self) -> Audited: ...


async def exposition(services: Scraped) -> bytes:
    """The Prometheus text of the default registry (HTTP metrics) and the appliance's."""
    m = services.metrics
    m.queue_depth.labels("embedding").set(services.embedder.queue_depth())
    m.queue_depth.labels("generation").set(services.generator.queue_depth())
    m.queue_depth.labels("store").set(services.store.queue_depth())
    m.slots_active.set(services.generator.active)
    m.slots_total.set(services.generator.slots)
    m.audit_dropped.set(services.audit.dropped)
    with contextlib.suppress(Exception):
        m.store_points.set(await asyncio.wait_for(services.store.count(), PING_TIMEOUT_S))
    return generate_latest(REGISTRY) + generate_latest(m.registry)
