"""The dashboard's numbers, computed from successive scrapes of the appliance's /metrics.

Pure: parse the Prometheus text, then rates and histogram quantiles over a window of
scrapes (as PromQL's `rate()` and `histogram_quantile()` would). Testable without an app.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

# The console's own polling: left out of the request rate and latency it charts.
CONSOLE_PATHS = frozenset({"/metrics", "/readyz", "/healthz", "/v1/status", "/v1/logs"})
HISTORY = 60  # points per chart: a minute at one scrape a second
WINDOW = 5  # scrapes that rates and quantiles span


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Scrape:
    at: float
    samples: dict[str, list[Sample]]

    @classmethod
    def parse(cls, text: str, at: float) -> Scrape:
        samples: dict[str, list[Sample]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples.setdefault(s.name, []).append(Sample(dict(s.labels), float(s.value)))
        return cls(at, samples)

    def total(self, name: str, keep: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
        return sum(s.value for s in self.samples.get(name, []) if keep(s.labels))

    def buckets(
        self, name: str, keep: Callable[[dict[str, str]], bool] = lambda _: True
    ) -> dict[float, float]:
        """Cumulative counts by upper bound, summed over the label sets kept."""
        out: dict[float, float] = {}
        for s in self.samples.get(f"{name}_bucket", []):
            if keep(s.labels):
                le = float(s.labels["le"])
                out[le] = out.get(le, 0.0) + s.value
        return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile(): linear within the bucket that holds the q-th observation;
    None with no observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (upper - lower) * share
        lower, below = upper, count
    return lower


def _not_console(labels: dict[str, str]) -> bool:
    return labels.get("path") not in CONSOLE_PATHS


@dataclass
class Series:
    label: str
    unit: str
    points: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    now: float | None = None

    def add(self, value: float | None) -> None:
        self.now = value
        self.points.append(value if value is not None else 0.0)


class MetricsWindow:
    """Feed it each scrape; it keeps a minute of each dashboard series."""

    def __init__(self) -> None:
        self.scrapes: deque[Scrape] = deque(maxlen=WINDOW + 1)
        self.series = {
            key: Series(label, unit)
            for key, label, unit in (
                ("requests", "requests/s", "/s"),
                ("p50", "latency p50", "ms"),
                ("p99", "latency p99", "ms"),
                ("ttft", "first token p50", "ms"),
                ("tokens", "tokens/s", "/s"),
                ("queue", "queue depth", ""),
                ("slots", "slots in use", ""),
                ("chunks", "ingest chunks/s", "/s"),
                ("rss", "memory (RSS)", "MiB"),
            )
        }
        self.requests_total = 0.0
        self.slots_total = 0.0

    def add(self, scrape: Scrape) -> None:
        self.scrapes.append(scrape)
        first, last = self.scrapes[0], scrape
        span = last.at - first.at

        def rate(name: str, keep: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
            if span <= 0:
                return 0.0
            return max(0.0, last.total(name, keep) - first.total(name, keep)) / span

        def window_quantile(
            name: str, q: float, keep: Callable[[dict[str, str]], bool]
        ) -> float | None:
            now, then = last.buckets(name, keep), first.buckets(name, keep)
            delta = {le: count - then.get(le, 0.0) for le, count in now.items()}
            value = quantile(q, delta)
            return None if value is None else value * 1000

        http = "appliance_http_request_duration_seconds"
        s = self.series
        s["requests"].add(rate("appliance_http_requests_total", _not_console))
        s["p50"].add(window_quantile(http, 0.5, _not_console))
        s["p99"].add(window_quantile(http, 0.99, _not_console))
        s["ttft"].add(window_quantile("appliance_time_to_first_token_seconds", 0.5, lambda _: True))
        s["tokens"].add(rate("appliance_tokens_generated_total"))
        s["queue"].add(last.total("appliance_queue_depth"))
        s["slots"].add(last.total("appliance_generation_slots_active"))
        s["chunks"].add(rate("appliance_chunks_ingested_total"))
        s["rss"].add(last.total("process_resident_memory_bytes") / 2**20 or None)
        self.requests_total = last.total("appliance_http_requests_total")
        self.slots_total = last.total("appliance_generation_slots")
