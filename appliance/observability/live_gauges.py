"""Gauges read at scrape time: is each part running, and how full is the data disk.

A collector, not gauges set by a timer: the registry calls `collect()` each time
/metrics is scraped, so the values are fresh and nothing runs between scrapes.

- `appliance_ready`: 1 when every part /readyz checks has its thread running (the
  models, the vector store, the journal), else 0. /readyz also pings the store and the
  journal; a scrape does not wait on them. While the models load the services do not
  exist yet and /metrics answers 503, so Prometheus records `up == 0`.
- `appliance_part_ready{part}`: the same, per part (the names of /readyz's checks).
- `appliance_data_disk_free_bytes` / `appliance_data_disk_total_bytes`: the file system
  of the data directory (one statvfs call), as /v1/status reports them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.domain.protocols import Generator

log = logging.getLogger(__name__)

READY = "appliance_ready"
PART_READY = "appliance_part_ready"
DISK_FREE = "appliance_data_disk_free_bytes"
DISK_TOTAL = "appliance_data_disk_total_bytes"


class Part(Protocol):
    @property
    def alive(self) -> bool: ...


class Watched(Protocol):
    """What the collector reads of the services (read again at every scrape: an
    embedding switch replaces the embedder and the store)."""

    data_dir: Path
    generator: Generator

    @property
    def embedder(self) -> Part: ...
    @property
    def store(self) -> Part: ...  # the store and the journal: their types are floors above
    @property
    def journal(self) -> Part: ...


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    ready = GaugeMetricFamily(
        READY, "1 when every part /readyz checks is running (models, store, journal), else 0."
    )
    parts = GaugeMetricFamily(
        PART_READY, "1 when this part is running, else 0 (the parts of /readyz).", labels=["part"]
    )
    return ready, parts


class LiveGauges(Collector):
    """The gauges read from the services at each scrape (above)."""

    def __init__(self, services: Watched) -> None:
        self._services = services

    def parts(self) -> dict[str, bool]:
        s = self._services
        return {
            "embedding_model": s.embedder.alive,
            "chat_model": s.generator.alive,
            "vector_store": s.store.alive,
            "journal": s.journal.alive,
        }

    def describe(self) -> Iterable[Metric]:
        """The names, for the registry's duplicate check (no values read)."""
        yield from _families()
        yield GaugeMetricFamily(DISK_FREE, "")
        yield GaugeMetricFamily(DISK_TOTAL, "")

    def collect(self) -> Iterable[Metric]:
        ready, per_part = _families()
        parts = self.parts()
        ready.add_metric([], float(all(parts.values())))
        for name, alive in parts.items():
            per_part.add_metric([name], float(alive))
        yield ready
        yield per_part
        try:
            disk = shutil.disk_usage(self._services.data_dir)
        except OSError as exc:  # the data directory is gone: the samples are absent
            log.warning("cannot read the data directory's disk space: %s", exc)
            return
        yield GaugeMetricFamily(
            DISK_FREE,
            "Bytes free (for the appliance's user) on the data directory's file system.",
            value=float(disk.free),
        )
        yield GaugeMetricFamily(
            DISK_TOTAL,
            "Size of the data directory's file system, in bytes.",
            value=float(disk.total),
        )
