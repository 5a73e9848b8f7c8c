"""Dashboard: readiness of each part, models and disk, and a minute of live charts."""

from __future__ import annotations

import time
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Static

from appliance.wire.status import Readiness, StatusRead
from tui.messages import MetricsScraped
from tui.metrics import MetricsWindow, Scrape
from tui.screens.base import ConsoleScreen
from tui.widgets.chart import Chart
from tui.widgets.plain import plain

PARTS = {
    "embedding_model": "embedding model",
    "chat_model": "chat model",
    "vector_store": "vector store",
    "journal": "catalog (journal)",
}


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {s:02d}s"


def readiness_text(ready: Readiness | None) -> str:
    if ready is None:
        return "Readiness: unknown (no answer yet)"
    lines = [f"Appliance: {'READY' if ready.status == 'ready' else 'NOT READY'}"]
    for part, state in ready.checks.items():
        mark = "ok  " if state == "ok" else "DOWN"
        reason = "" if state == "ok" else f": {state}"
        lines.append(f" {mark} {PARTS.get(part, part)}{reason}")
    return "\n".join(lines)


def status_text(status: StatusRead | None, requests_total: float) -> str:
    if status is None:
        return "Models: unknown (no answer yet)"
    lines = []
    for m in status.models:
        lines.append(
            f"{m.role:<9} {m.name} · {size(m.file_size_bytes)} · ctx {m.context_tokens}"
            f" × {m.slots} · {m.threads} thr"
        )
    lines.append(
        f"up {duration(status.uptime_s)} · v{status.version} · {status.documents} docs"
        f" · {requests_total:.0f} requests"
    )
    lines.append(
        f"data {size(status.data_dir_bytes)} · disk free {size(status.disk_free_bytes)}"
        f" of {size(status.disk_total_bytes)} · RAM plan {size(status.ram_planned_bytes)}"
        f" of {size(status.ram_budget_bytes)}"
    )
    return "\n".join(lines)


class DashboardScreen(ConsoleScreen):
    MODE = "dashboard"
    POLL_S: ClassVar[float | None] = 1.0
    CSS_PATH = "dashboard.tcss"

    def __init__(self) -> None:
        super().__init__()
        self.window = MetricsWindow()

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with VerticalScroll(id="dashboard-body"):
            with Horizontal(id="dashboard-top"):
                yield Static(plain(readiness_text(None)), id="readiness")
                yield Static(plain(status_text(None, 0)), id="status")
            with Grid(id="charts"):
                for key, series in self.window.series.items():
                    yield Chart(key, series)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.watch(self.console, "readiness", self.show_readiness)
        self.watch(self.console, "server_status", self.show_status)

    def show_readiness(self, ready: Readiness | None) -> None:
        self.query_one("#readiness", Static).update(plain(readiness_text(ready)))

    def show_status(self, status: StatusRead | None) -> None:
        text = status_text(status, self.window.requests_total)
        self.query_one("#status", Static).update(plain(text))

    def poll(self) -> None:
        self.scrape()

    @work(exclusive=True, group="scrape", exit_on_error=False)
    async def scrape(self) -> None:
        text = await self.call("read /metrics", self.client.metrics_text(), background=True)
        if text is not None:
            self.post_message(MetricsScraped(Scrape.parse(text, time.monotonic())))

    def on_metrics_scraped(self, message: MetricsScraped) -> None:
        self.window.add(message.scrape)
        for chart in self.query(Chart):
            chart.refresh_from_series()
        self.show_status(self.console.server_status)
