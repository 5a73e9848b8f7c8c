"""A document's chunks, as the index holds them (Escape goes back)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from appliance.client import ApiError
from tui.messages import CallFailed, ChunksLoaded
from tui.widgets.plain import plain

if TYPE_CHECKING:
    from tui.app import AdminApp

PAGE = 200


class ChunksScreen(Screen[None]):
    CSS_PATH = "chunks.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("n", "more", "More chunks"),
    ]

    def __init__(self, document_id: str, file_name: str) -> None:
        super().__init__()
        self.document_id = document_id
        self.file_name = file_name
        self.loaded = 0
        self.total: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(plain(f"Chunks of {self.file_name}: loading…"), id="chunks-title")
        yield VerticalScroll(id="chunks")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def action_more(self) -> None:
        if self.total is None or self.loaded < self.total:
            self.load()

    @work(exclusive=True, group="chunks", exit_on_error=False)
    async def load(self) -> None:
        client = cast("AdminApp", self.app).client
        try:
            page = await client.chunks(self.document_id, self.loaded, PAGE)
        except ApiError as exc:
            self.post_message(CallFailed(f"read the chunks of {self.file_name}", exc))
            return
        self.post_message(ChunksLoaded(page))

    async def on_chunks_loaded(self, message: ChunksLoaded) -> None:
        page = message.page
        self.total = page.total
        blocks = []
        for c in page.chunks:
            where = " · ".join(
                x for x in (f"page {c.page}" if c.page else "", c.heading or "") if x
            )
            head = f"#{c.index}" + (f" · {where}" if where else "")
            blocks.append(Static(plain(f"{head}\n{c.text}"), classes="chunk"))
        await self.query_one("#chunks", VerticalScroll).mount_all(blocks)
        self.loaded += len(page.chunks)
        more = " · n: more" if self.loaded < page.total else ""
        self.query_one("#chunks-title", Static).update(
            plain(f"Chunks of {self.file_name}: {self.loaded} of {page.total} shown{more}"
                  " · Escape: back")
        )  # fmt: skip
