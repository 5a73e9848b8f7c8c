"""Search: ranked hits with scores, to check retrieval without the model."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.widgets import DataTable, Input, Static

from appliance.domain.types import Hit
from tui.messages import SearchDone
from tui.screens.base import ConsoleScreen


class SearchScreen(ConsoleScreen):
    MODE = "search"
    CSS_PATH = "search.tcss"

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, Hit] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        yield Input(placeholder="Search the index (no model), then Enter", id="query")
        table: DataTable[str] = DataTable(id="hits", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="hit-text")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#hits", DataTable)
        for column in ("#", "score", "file", "page", "text"):
            table.add_column(column, key=column)
        self.query_one("#query", Input).focus()

    @on(Input.Submitted, "#query")
    def searched(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.search(event.value.strip())
            self.query_one("#hits", DataTable).focus()  # arrows read the hits; digits switch

    @work(exclusive=True, group="search", exit_on_error=False)
    async def search(self, query: str) -> None:
        response = await self.call("search", self.client.search(query, top_k=10))
        if response is not None:
            self.post_message(SearchDone(response))

    def on_search_done(self, message: SearchDone) -> None:
        table = self.query_one("#hits", DataTable)
        table.clear()
        self.hits = {}
        for rank, hit in enumerate(message.response.hits, 1):
            snippet = " ".join(hit.text.split())[:60]
            table.add_row(
                str(rank), f"{hit.score:.3f}", hit.file_name, str(hit.page or ""), snippet,
                key=hit.point_id,
            )  # fmt: skip
            self.hits[hit.point_id] = hit
        r = message.response
        self.query_one("#hit-text", Static).update(
            f"{len(r.hits)} hits · embed {r.embed_ms:.0f} ms · search {r.search_ms:.1f} ms"
        )

    @on(DataTable.RowHighlighted, "#hits")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        hit = self.hits.get(str(event.row_key.value))
        if hit is not None:
            where = hit.file_name + (f", page {hit.page}" if hit.page else "")
            self.query_one("#hit-text", Static).update(
                f"{where} · chunk {hit.chunk_index}\n{hit.text}"
            )
