"""Keys: list with the collections each reads, create (the secret is shown once), revoke
(confirmed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Select, Static

from appliance.client.display import when
from appliance.client.names import key_collections
from appliance.wire.collections import ALL_COLLECTIONS
from appliance.wire.keys import KeyCreated, KeyRead, Role
from tui.messages import KeyMade, KeysLoaded
from tui.screens.base import ConsoleScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.plain import plain
from tui.widgets.record_table import RecordTable

COLUMNS = ("id", "role", "name", "created", "revoked", "collections")


@dataclass(frozen=True)
class NewKey:
    """What the new-key form asks for: who it is for, its role, the collections it reads."""

    name: str
    role: Role
    collections: list[str]


class NewKeyScreen(ModalScreen[NewKey | None]):
    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                "New API key: who or what is it for, its role, and the collections it may "
                "read? Enter makes it."
            )
            yield Input(placeholder="name, e.g. helpdesk-bot", id="key-name")
            yield Select(
                [("query: search, ask, read", "query"), ("ingest: upload and jobs", "ingest"),
                 ("admin: everything", "admin")],
                value="query", allow_blank=False, id="key-role",
            )  # fmt: skip
            yield Input(
                ALL_COLLECTIONS, placeholder="collections: * for all, or hr, finance",
                id="key-collections",
            )  # fmt: skip

    @on(Input.Submitted)
    def submitted(self) -> None:
        name = self.query_one("#key-name", Input).value.strip()
        if not name:
            self.notify("give the key a name", severity="warning")
            return
        try:
            collections = key_collections(self.query_one("#key-collections", Input).value)
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        role = cast(Role, self.query_one("#key-role", Select).value)
        self.dismiss(NewKey(name, role, collections))


class SecretScreen(ModalScreen[None]):
    """The new key's secret, this once; `c` copies it to the terminal's clipboard."""

    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy"),
        Binding("escape,enter", "dismiss(None)", "Close"),
    ]

    def __init__(self, created: KeyCreated) -> None:
        super().__init__()
        self.created = created

    def compose(self) -> ComposeResult:
        c = self.created
        with Vertical(classes="dialog"):
            yield Static(
                plain(
                    f"Made {c.role} key {c.id} ({c.name}), reading {', '.join(c.collections)}. "
                    "Copy it now: it is not shown again (only its hash is stored).\n\n"
                    f"{c.key}\n\n"
                    "c: copy to the clipboard (OSC 52: most terminals, also over SSH) · or "
                    "select it with the mouse (shift+drag in tmux) · Escape: close"
                ),
                id="secret",
            )

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.created.key)
        self.notify("copied (if your terminal allows OSC 52)")


class KeyTable(RecordTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "act('new')", "New key"),
        Binding("d,delete", "act('revoke')", "Revoke"),
    ]


class KeysScreen(ConsoleScreen):
    MODE = "keys"
    POLL_S: ClassVar[float | None] = 5.0
    CSS_PATH = "keys.tcss"
    AUTO_FOCUS = "#keys"

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, KeyRead] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        yield KeyTable(COLUMNS, id="keys")
        yield Static("", id="keys-summary")
        yield from self.compose_footer()

    def poll(self) -> None:
        self.load()

    @work(exclusive=True, group="keys", exit_on_error=False)
    async def load(self) -> None:
        keys = await self.call("list keys", self.client.keys(), background=True)
        if keys is not None:
            self.post_message(KeysLoaded(keys))

    def on_keys_loaded(self, message: KeysLoaded) -> None:
        self.keys = {k.id: k for k in message.keys}
        rows = {
            k.id: (k.id, k.role, k.name, when(k.created_at), when(k.revoked_at),
                   ", ".join(k.collections))
            for k in message.keys
        }  # fmt: skip
        self.query_one("#keys", RecordTable).show_rows(rows)
        live = sum(1 for k in message.keys if k.revoked_at is None)
        self.query_one("#keys-summary", Static).update(
            f"{live} active keys, {len(message.keys) - live} revoked · n: new · d: revoke"
        )

    @on(RecordTable.RowAction, "#keys")
    def key_action(self, event: RecordTable.RowAction) -> None:
        key = self.keys.get(event.key or "")
        if event.action == "new":
            self.new_key()
        elif event.action == "revoke" and key is not None:
            self.confirm_revoke(key)

    def new_key(self) -> None:
        def answered(answer: NewKey | None) -> None:
            if answer is not None:
                self.create(answer)

        self.app.push_screen(NewKeyScreen(), answered)

    @work(group="create-key", exit_on_error=False)
    async def create(self, new: NewKey) -> None:
        made = self.client.create_key(new.name, new.role, new.collections)
        created = await self.call("create the key", made)
        if created is not None:
            self.post_message(KeyMade(created))
        self.load()

    def on_key_made(self, message: KeyMade) -> None:
        self.app.push_screen(SecretScreen(message.created))

    def confirm_revoke(self, key: KeyRead) -> None:
        if key.revoked_at is not None:
            self.notify(f"key {key.id} is already revoked", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.revoke(key.id, key.name)

        question = f"Revoke the {key.role} key {key.id} ({key.name})? Its holders lose access."
        self.app.push_screen(ConfirmScreen(question, yes="revoke"), answered)

    @work(group="revoke", exit_on_error=False)
    async def revoke(self, key_id: str, name: str) -> None:
        if await self.succeeded(f"revoke {name}", self.client.revoke_key(key_id)):
            self.notify(f"revoked key {key_id} ({name})")
        self.load()
