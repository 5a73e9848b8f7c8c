"""Documents: the table (with each one's collection) with filter-as-you-type; delete
(confirmed), re-index, chunks."""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from appliance.wire.documents import DocumentRead
from tui.messages import DocumentsLoaded
from tui.screens.base import ConsoleScreen
from tui.screens.chunks import ChunksScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.plain import plain
from tui.widgets.record_table import RecordTable

COLUMNS = ("name", "collection", "type", "pages", "chunks", "ingested")


def kind(content_type: str) -> str:
    short = {
        "application/pdf": "pdf", "text/plain": "text", "text/markdown": "markdown",
        "text/html": "html",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    }  # fmt: skip
    return short.get(content_type, content_type.rsplit("/", 1)[-1][:12])


def cells(d: DocumentRead) -> tuple[str, ...]:
    ingested = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.created_at))
    pages = str(d.pages) if d.pages else ""
    return (d.file_name, d.collection, kind(d.content_type), pages, str(d.chunks), ingested)


def matches(d: DocumentRead, needle: str) -> bool:
    needle = needle.strip().lower()
    return not needle or any(
        needle in field for field in (d.file_name.lower(), kind(d.content_type), d.collection)
    )


class DocumentTable(RecordTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d,delete", "act('delete')", "Delete"),
        Binding("r", "act('reindex')", "Re-index"),
    ]


class DocumentsScreen(ConsoleScreen):
    MODE = "documents"
    POLL_S: ClassVar[float | None] = 2.0
    CSS_PATH = "documents.tcss"
    AUTO_FOCUS = "#documents"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "chunks", "Chunks", show=True),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "table", "To table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.documents: dict[str, DocumentRead] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        yield Input(placeholder="Filter by name, type or collection (/)", id="filter")
        yield DocumentTable(COLUMNS, id="documents")
        yield Static("", id="summary")
        yield from self.compose_footer()

    def poll(self) -> None:
        self.load()

    @work(exclusive=True, group="documents", exit_on_error=False)
    async def load(self) -> None:
        documents = await self.call("list documents", self.client.documents(), background=True)
        if documents is not None:
            self.post_message(DocumentsLoaded(documents))

    def on_documents_loaded(self, message: DocumentsLoaded) -> None:
        self.documents = {d.id: d for d in message.documents.documents}
        self.show()

    @on(Input.Changed, "#filter")
    def show(self) -> None:
        needle = self.query_one("#filter", Input).value
        shown = {i: cells(d) for i, d in self.documents.items() if matches(d, needle)}
        self.query_one("#documents", RecordTable).show_rows(shown)
        chunks = sum(d.chunks for d in self.documents.values())
        text = f"{len(self.documents)} documents · {chunks} chunks"
        if needle.strip():
            text += f" · {len(shown)} match “{needle.strip()}”"
        self.query_one("#summary", Static).update(plain(text))

    def _selected(self) -> DocumentRead | None:
        return self.documents.get(self.query_one("#documents", RecordTable).selected_key or "")

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_table(self) -> None:
        self.query_one("#documents", RecordTable).focus()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.action_table()

    @on(DataTable.RowSelected, "#documents")
    def action_chunks(self) -> None:
        doc = self._selected()
        if doc is not None:
            self.app.push_screen(ChunksScreen(doc.id, doc.file_name))

    @on(RecordTable.RowAction, "#documents")
    def document_action(self, event: RecordTable.RowAction) -> None:
        doc = self.documents.get(event.key or "")
        if doc is None:
            return
        if event.action == "delete":
            self.confirm_delete(doc)
        elif event.action == "reindex":
            self.reindex(doc)

    def confirm_delete(self, doc: DocumentRead) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.delete(doc.id, doc.file_name)

        question = f"Delete {doc.file_name} and its {doc.chunks} chunks? This cannot be undone."
        self.app.push_screen(ConfirmScreen(question), answered)

    @work(group="delete", exit_on_error=False)
    async def delete(self, document_id: str, file_name: str) -> None:
        if await self.succeeded(f"delete {file_name}", self.client.delete_document(document_id)):
            self.notify(f"deleted {file_name}")
        self.load()

    @work(group="reindex", exit_on_error=False)
    async def reindex(self, doc: DocumentRead) -> None:
        created = await self.call(f"re-index {doc.file_name}", self.client.reindex(doc.id))
        if created is not None:
            self.notify(f"re-indexing {doc.file_name} (job {created.job_id[:8]}): see Ingest/jobs")
