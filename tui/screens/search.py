"""Search: ranked hits with scores, to check retrieval without the model; `e` runs a
question set against the index (`appliance eval`) and lists how each question fared."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from appliance.client import ApiError, display
from appliance.client.evaluation import EvalQuestion, QuestionResult, evaluate, format_report
from appliance.domain.types import Hit
from tui.messages import EvalFinished, EvalProgress, SearchDone
from tui.screens.base import ConsoleScreen
from tui.screens.evaluate import EvaluateScreen
from tui.widgets.plain import cell, plain

SEARCH_COLUMNS = ("#", "score", "file", "page", "text")
EVAL_COLUMNS = ("#", "rank", "expected file", "answer", "question")
SHIPPED_SET = "bench/data/pg_questions.jsonl"  # offered when the console runs from a checkout


class SearchScreen(ConsoleScreen):
    MODE = "search"
    CSS_PATH = "search.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("e", "evaluate", "Evaluate a set")]

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, Hit] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        yield Input(placeholder="Search the index (no model), then Enter", id="query")
        table: DataTable[Text] = DataTable(id="hits", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="hit-text")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        super().on_mount()
        self._columns(SEARCH_COLUMNS)
        self.query_one("#query", Input).focus()

    def _columns(self, names: tuple[str, ...]) -> DataTable[Text]:
        """The table emptied, with these columns (search hits or evaluation results)."""
        table: DataTable[Text] = self.query_one("#hits", DataTable)
        if tuple(str(c.label) for c in table.columns.values()) != names:
            table.clear(columns=True)
            for column in names:
                table.add_column(column, key=column)
        table.clear()
        return table

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
        table = self._columns(SEARCH_COLUMNS)
        self.hits = {}
        for rank, hit in enumerate(message.response.hits, 1):
            snippet = " ".join(hit.text.split())[:60]
            row = (str(rank), f"{hit.score:.3f}", hit.file_name, str(hit.page or ""), snippet)
            table.add_row(*map(cell, row), key=hit.point_id)
            self.hits[hit.point_id] = hit
        r = message.response
        self.query_one("#hit-text", Static).update(
            f"{len(r.hits)} hits · embed {r.embed_ms:.0f} ms · search {r.search_ms:.1f} ms"
        )

    @on(DataTable.RowHighlighted, "#hits")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        hit = self.hits.get(str(event.row_key.value))
        if hit is not None:
            where = display.where(hit)
            self.query_one("#hit-text", Static).update(
                plain(f"{where} · chunk {hit.chunk_index}\n{hit.text}")
            )

    # ---- evaluation ---------------------------------------------------------
    def action_evaluate(self) -> None:
        def chosen(picked: tuple[list[EvalQuestion], bool, str] | None) -> None:
            if picked is not None:
                self._columns(EVAL_COLUMNS)
                self.hits = {}
                self.run_eval(*picked)

        default = SHIPPED_SET if Path(SHIPPED_SET).is_file() else ""
        self.app.push_screen(EvaluateScreen(default), chosen)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def run_eval(self, questions: list[EvalQuestion], answers: bool, name: str) -> None:
        done = 0

        def scored(result: QuestionResult) -> None:
            nonlocal done
            done += 1
            self.post_message(EvalProgress(result, done, len(questions)))

        try:
            report = await evaluate(self.client, questions, answers=answers, on_result=scored)
        except ApiError as exc:
            self.notify(f"evaluation stopped: {exc}", severity="error")
            return
        self.post_message(EvalFinished(report, name))

    def on_eval_progress(self, message: EvalProgress) -> None:
        r = message.result
        verdict = {True: "right", False: "wrong", None: "-"}[r.right]
        row = (str(message.done), f"#{r.rank}" if r.rank else "miss", r.question.file,
               verdict if not r.error else "error", r.question.question[:60])  # fmt: skip
        self.query_one("#hits", DataTable).add_row(*map(cell, row))
        self.query_one("#hit-text", Static).update(
            f"evaluating: {message.done} of {message.total} questions"
        )

    def on_eval_finished(self, message: EvalFinished) -> None:
        summary = format_report(message.report).replace("\n", " · ")
        self.query_one("#hit-text", Static).update(plain(f"{message.name}: {summary}"))
