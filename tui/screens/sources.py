"""Synced folders: each with its schedule and last scan; `s` scans the selected one now."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from appliance.client.display import when
from appliance.domain.types import ScanReport
from appliance.wire.sources import SourceRead
from tui.messages import SourcesLoaded
from tui.screens.base import ConsoleScreen
from tui.widgets.plain import plain
from tui.widgets.record_table import RecordTable

COLUMNS = ("id", "path", "schedule", "last scan", "result")


def _result(report: ScanReport | None) -> str:
    if report is None:
        return "never scanned"
    if report.state == "running":
        return f"scanning… {report.seen} files seen"
    counts = (("new", report.new), ("changed", report.changed), ("deleted", report.deleted),
              ("failed", report.failed), ("unchanged", report.unchanged))  # fmt: skip
    text = ", ".join(f"{n} {label}" for label, n in counts if n) or "no files"
    if report.state == "failed" or report.error:
        text = f"{report.state}: {report.error or ''} · {text}"
    return text


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g} {unit}"
    return f"{seconds:g} s"


def _schedule(source: SourceRead) -> str:
    s = source.settings
    parts = [f"every {_duration(s.interval_s)}" if s.interval_s else "on demand"]
    if s.watch:
        parts.append("watched")
    return ", ".join(parts)


class SourceTable(RecordTable):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "act('scan')", "Scan now")]


class SourcesScreen(ConsoleScreen):
    MODE = "sources"
    POLL_S: ClassVar[float | None] = 3.0
    CSS_PATH = "sources.tcss"
    AUTO_FOCUS = "#sources"

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        yield SourceTable(COLUMNS, id="sources")
        yield Static("", id="sources-summary")
        yield from self.compose_footer()

    def poll(self) -> None:
        self.load()

    @work(exclusive=True, group="sources", exit_on_error=False)
    async def load(self) -> None:
        sources = await self.call("list synced folders", self.client.sources(), background=True)
        if sources is not None:
            self.post_message(SourcesLoaded(sources))

    def on_sources_loaded(self, message: SourcesLoaded) -> None:
        rows = {
            s.settings.id: (
                s.settings.id, s.settings.path, _schedule(s),
                when(s.last_scan.started_at if s.last_scan else None), _result(s.last_scan),
            )
            for s in message.sources
        }  # fmt: skip
        self.query_one("#sources", RecordTable).show_rows(rows)
        summary = f"{len(rows)} synced folders · s: scan the selected one now"
        if not rows:
            summary = "no synced folders: add one with [[sources]] in the config or " \
                "`appliance sources add`"  # fmt: skip
        self.query_one("#sources-summary", Static).update(plain(summary))

    @on(RecordTable.RowAction, "#sources")
    def scan_selected(self, event: RecordTable.RowAction) -> None:
        if event.key:  # `s`, the table's one action
            self.scan(event.key)

    @work(group="scan", exit_on_error=False)
    async def scan(self, source_id: str) -> None:
        if await self.succeeded(f"scan {source_id}", self.client.scan_source(source_id)):
            self.notify(f"scanning {source_id}")
        self.load()
