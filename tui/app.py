"""The Textual admin app: health, documents, jobs and live metrics, refreshed in workers."""

from __future__ import annotations

import contextlib
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import ModalScreen
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


class ConfirmDelete(ModalScreen[bool]):
    """Asks before a delete, naming the file: `y` deletes, `n` or Escape keeps it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Delete"),
        Binding("n,escape", "answer(False)", "Keep"),
    ]

    def __init__(self, file_name: str) -> None:
        super().__init__()
        self.file_name = file_name

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(
                f"Delete {self.file_name} and all its chunks? This cannot be undone.\n"
                "y: delete    n: keep",
                id="confirm-text",
            )

    def action_answer(self, delete: bool) -> None:
        self.dismiss(delete)


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
        selected = self._selected_document(docs)
        docs.clear()  # moves the cursor to row 0: put it back on the same document
        for d in snapshot.documents.documents if snapshot.documents else []:
            docs.add_row(d.id, d.file_name, d.chunks, d.pages or "", d.size_bytes, key=d.id)
        if selected is not None and selected in docs.rows:
            docs.move_cursor(row=docs.get_row_index(selected))
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

    @staticmethod
    def _selected_document(table: DataTable[object]) -> str | None:
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key else None

    def action_delete_document(self) -> None:
        table = self.query_one("#documents-table", DataTable)
        document_id = self._selected_document(table)
        if document_id is None:
            return
        file_name = str(table.get_row(document_id)[1])

        def answered(delete: bool | None) -> None:
            if delete:
                self.delete(document_id, file_name)

        self.push_screen(ConfirmDelete(file_name), answered)

    @work(thread=True, group="delete")
    def delete(self, document_id: str, file_name: str) -> None:
        try:
            self.client.delete_document(document_id)
        except Exception as exc:  # e.g. 404: deleted meanwhile; said, never fatal
            self.call_from_thread(
                self.notify, f"could not delete {file_name}: {exc}", severity="error"
            )
        else:
            self.call_from_thread(self.notify, f"deleted {file_name}")
        self.call_from_thread(self.action_refresh)
