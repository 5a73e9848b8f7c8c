"""The Textual admin app: health, documents, jobs and live metrics, refreshed in workers."""

from __future__ import annotations

import contextlib
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from appliance.api.schemas import DocumentList, JobRead, Readiness
from tui.client import ApplianceClient

WATCHED = (
    ("questions", "appliance_questions_total"),
    ("tokens", "appliance_tokens_generated_total"),
    ("chunks", "appliance_chunks_ingested_total"),
    ("documents", "appliance_documents_ingested_total"),
    ("answering now", "appliance_active_generations"),
    ("store points", "appliance_store_points"),
)


class Snapshot(Message):
    """One refresh of everything the screens show."""

    def __init__(
        self,
        ready: Readiness | None,
        documents: DocumentList | None,
        jobs: list[JobRead],
        metrics: dict[str, float],
        error: str | None,
    ) -> None:
        super().__init__()
        self.ready = ready
        self.documents = documents
        self.jobs = jobs
        self.metrics = metrics
        self.error = error


class AdminApp(App[None]):
    TITLE = "RAG appliance"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Refresh"),
        Binding("d", "delete_document", "Delete document"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, client: ApplianceClient, refresh_s: float = 2.0) -> None:
        super().__init__()
        self.client = client
        self.refresh_s = refresh_s
        self.last: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent():
            with TabPane("Health", id="health"):
                yield Static("connecting…", id="health-text")
            with TabPane("Documents", id="documents"):
                yield DataTable(id="documents-table", cursor_type="row")
            with TabPane("Jobs", id="jobs"):
                yield DataTable(id="jobs-table")
            with TabPane("Metrics", id="metrics"):
                yield DataTable(id="metrics-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#documents-table", DataTable).add_columns(
            "id", "file", "chunks", "pages", "size"
        )
        self.query_one("#jobs-table", DataTable).add_columns(
            "job", "state", "files", "failed", "chunks"
        )
        self.query_one("#metrics-table", DataTable).add_columns("metric", "value")
        self.action_refresh()
        self.set_interval(self.refresh_s, self.action_refresh)

    def action_refresh(self) -> None:
        self.fetch()

    @work(thread=True, exclusive=True, group="fetch")
    def fetch(self) -> None:
        try:
            snapshot = Snapshot(
                self.client.readiness(),
                self.client.documents(),
                self.client.jobs(),
                self.client.metrics(),
                None,
            )
        except Exception as exc:  # shown, never fatal: the server may be restarting
            snapshot = Snapshot(None, None, [], {}, f"cannot reach {self.client.base_url}: {exc}")
        self.post_message(snapshot)

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self.last = snapshot
        # The app may be closing: a thread fetch can finish after its screen went away.
        with contextlib.suppress(NoMatches):
            self.show(snapshot)

    def show(self, snapshot: Snapshot) -> None:
        health = self.query_one("#health-text", Static)
        if snapshot.error or snapshot.ready is None:
            health.update(snapshot.error or "no answer")
            return
        lines = [f"server {self.client.base_url}: {snapshot.ready.status}"]
        lines += [f"  {name:<16} {state}" for name, state in snapshot.ready.checks.items()]
        health.update("\n".join(lines))
        docs = self.query_one("#documents-table", DataTable)
        docs.clear()
        for d in snapshot.documents.documents if snapshot.documents else []:
            docs.add_row(d.id, d.file_name, d.chunks, d.pages or "", d.size_bytes, key=d.id)
        jobs = self.query_one("#jobs-table", DataTable)
        jobs.clear()
        for j in snapshot.jobs:
            jobs.add_row(
                j.id[:8], j.state, f"{j.files_done}/{j.files_total}", j.files_failed,
                f"{j.chunks_done}/{j.chunks_total}",
            )  # fmt: skip
        table = self.query_one("#metrics-table", DataTable)
        table.clear()
        for label, name in WATCHED:
            total = sum(v for k, v in snapshot.metrics.items() if k.split("{")[0] == name)
            table.add_row(label, f"{total:g}")

    def action_delete_document(self) -> None:
        table = self.query_one("#documents-table", DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key:
            self.delete(str(key))

    @work(thread=True, group="delete")
    def delete(self, document_id: str) -> None:
        self.client.delete_document(document_id)
        self.call_from_thread(self.action_refresh)
