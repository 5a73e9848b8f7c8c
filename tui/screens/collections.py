"""Collections: the named sets of documents keys are allowed to read. List, create,
rename (keys keep reading it) and delete (confirmed; one that holds documents is deleted
with them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from appliance.client.display import when
from appliance.client.names import collection_name
from appliance.wire.collections import CollectionRead
from tui.messages import CollectionsLoaded
from tui.screens.base import ConsoleScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.plain import plain
from tui.widgets.record_table import RecordTable

COLUMNS = ("name", "id", "documents", "created")


class NameScreen(ModalScreen[str | None]):
    """Asks for a collection's name (a new one, or a new name for one); Enter answers."""

    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, question: str, initial: str = "") -> None:
        super().__init__()
        self.question = question
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(plain(self.question))
            yield Input(
                self.initial, placeholder="e.g. hr, finance, helpdesk", id="collection-name"
            )

    @on(Input.Submitted, "#collection-name")
    def submitted(self, event: Input.Submitted) -> None:
        try:
            name = collection_name(event.value.strip())
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.dismiss(name)


class CollectionTable(RecordTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "act('new')", "New"),
        Binding("r", "act('rename')", "Rename"),
        Binding("d,delete", "act('delete')", "Delete"),
    ]


class CollectionsScreen(ConsoleScreen):
    MODE = "collections"
    POLL_S: ClassVar[float | None] = 5.0
    CSS_PATH = "collections.tcss"
    AUTO_FOCUS = "#collections"

    def __init__(self) -> None:
        super().__init__()
        self.collections: dict[str, CollectionRead] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        yield CollectionTable(COLUMNS, id="collections")
        yield Static("", id="collections-summary")
        yield from self.compose_footer()

    def poll(self) -> None:
        self.load()

    @work(exclusive=True, group="collections", exit_on_error=False)
    async def load(self) -> None:
        found = await self.call("list collections", self.client.collections(), background=True)
        if found is not None:
            self.post_message(CollectionsLoaded(found))

    def on_collections_loaded(self, message: CollectionsLoaded) -> None:
        self.collections = {c.id: c for c in message.collections}
        rows = {
            c.id: (c.name, c.id, str(c.documents), when(c.created_at)) for c in message.collections
        }
        self.query_one("#collections", RecordTable).show_rows(rows)
        documents = sum(c.documents for c in message.collections)
        self.query_one("#collections-summary", Static).update(
            plain(
                f"{len(rows)} collections · {documents} documents · n: new · r: rename · d: delete"
            )
        )

    @on(RecordTable.RowAction, "#collections")
    def collection_action(self, event: RecordTable.RowAction) -> None:
        found = self.collections.get(event.key or "")
        if event.action == "new":
            self.ask_name("New collection: its name? Enter makes it.", self.create)
        elif event.action == "rename" and found is not None:
            question = f"New name of the collection {found.name} (its keys keep reading it):"
            self.ask_name(question, lambda new: self.rename(found.name, new), found.name)
        elif event.action == "delete" and found is not None:
            self.confirm_delete(found)

    def ask_name(self, question: str, then: Callable[[str], object], initial: str = "") -> None:
        def answered(name: str | None) -> None:
            if name is not None:
                then(name)

        self.app.push_screen(NameScreen(question, initial), answered)

    @work(group="create-collection", exit_on_error=False)
    async def create(self, name: str) -> None:
        made = await self.call(f"create {name}", self.client.create_collection(name))
        if made is not None:
            self.notify(f"made collection {made.name}")
        self.load()

    @work(group="rename-collection", exit_on_error=False)
    async def rename(self, name: str, new: str) -> None:
        if new == name:
            return
        renamed = await self.call(f"rename {name}", self.client.rename_collection(name, new))
        if renamed is not None:
            self.notify(f"renamed {name} to {renamed.name}")
        self.load()

    def confirm_delete(self, collection: CollectionRead) -> None:
        force = collection.documents > 0

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete(collection.name, force)

        question = (
            f"Delete the collection {collection.name} and its {collection.documents} "
            "documents? Keys that read it lose them. This cannot be undone."
            if force
            else f"Delete the empty collection {collection.name}?"
        )
        self.app.push_screen(ConfirmScreen(question), answered)

    @work(group="delete-collection", exit_on_error=False)
    async def delete(self, name: str, force: bool) -> None:
        deleted = await self.call(f"delete {name}", self.client.delete_collection(name, force))
        if deleted is not None:
            self.notify(f"deleted {deleted.name} and its {deleted.documents_deleted} documents")
        self.load()
