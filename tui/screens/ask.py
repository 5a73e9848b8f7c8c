"""Ask: a playground that shows the sentences answering the question as soon as they
arrive (then highlighted within their passage), streams the answer's words under them,
then its evidence and citations."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input, Static

from appliance.client import ApiError
from appliance.client.display import where
from appliance.domain.types import DoneEvent, ErrorEvent, Evidence, EvidenceEvent, TokenEvent
from tui.messages import AnswerDone, AnswerEvidence, AnswerFailed, AnswerToken, EvidencePassage
from tui.screens.base import ConsoleScreen
from tui.widgets.plain import cell, clean, plain

HIGHLIGHT = "bold reverse"  # an evidence sentence within its passage


def stats_line(done: DoneEvent) -> str:
    t = done.timings
    low = "" if done.grounded >= 0.5 else " (low: check the evidence)"
    if done.strategy == "extract":  # the documents' sentences: no model, no tokens
        speed = f"quoted from the documents in {t.total_ms:.0f} ms, no model"
    else:
        speed = (
            f"first token {t.first_token_ms:.0f} ms · {t.tokens_per_s:.1f} tok/s · "
            f"{t.completion_tokens} tokens"
        )
    return (
        f"{speed} · grounded {done.grounded:.2f}{low} · "
        f"finish {done.finish_reason} · prompt {done.strategy}"
    )


def evidence_line(e: Evidence) -> str:
    return f'  [{e.citation}] {where(e)}: "{" ".join(e.text.split())}"'


def first_evidence_text(evidence: list[Evidence]) -> str:
    return "\n".join(["From the documents:", *map(evidence_line, evidence)])


def in_passage(text: str, evidence: list[Evidence]) -> Text:
    """The first evidence's passage with the evidence sentences it holds highlighted, then
    the other evidence sentences. Every piece is plain text (`clean`), never markup."""
    first = evidence[0]
    chunk = (first.document_id, first.chunk_index)
    shown = Text(clean(f"From the documents: [{first.citation}] {where(first)}\n"), end="")
    pos = 0
    others: list[Evidence] = []
    for e in sorted(evidence, key=lambda e: e.start):
        mine = (e.document_id, e.chunk_index) == chunk and text[e.start : e.end] == e.text
        if not mine or e.start < pos:  # another passage's, or overlapping: a line below
            others.append(e)
            continue
        shown.append(clean(text[pos : e.start]))
        shown.append(clean(text[e.start : e.end]), style=HIGHLIGHT)
        pos = e.end
    shown.append(clean(text[pos:]))
    if others:
        others.sort(key=evidence.index)
        shown.append(clean("\n" + "\n".join(map(evidence_line, others))))
    return shown


def evidence_text(done: DoneEvent) -> str:
    """The evidence weighed against the answer, and what it does not support."""
    if not done.evidence:
        return "Evidence: none found in the passages read."
    lines = ["Evidence:", *map(evidence_line, done.evidence)]
    for sentence in done.unsupported:
        lines.append(f'  not supported by the documents: "{sentence}"')
    return "\n".join(lines)


class AskScreen(ConsoleScreen):
    MODE = "ask"
    CSS_PATH = "ask.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop answer"),
        Binding("f2", "toggle_extract", "Extract/generate"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.answer = ""
        # True: the documents' sentences, without the model; False: the model writes;
        # None: as the server's generation.answer_mode says
        self.extract: bool | None = None
        self.first_evidence: list[Evidence] = []  # of the answer being shown

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        yield Input(placeholder="Ask a question about the documents, then Enter", id="question")
        with VerticalScroll(id="answer-pane"):
            yield Static("", id="first-evidence")  # shown when the evidence event comes
            yield Static("", id="answer")
            yield Static("", id="stats")
            yield Static("", id="evidence")
            table: DataTable[Text] = DataTable(id="citations", cursor_type="row")
            yield table
        yield from self.compose_footer()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#citations", DataTable)
        for column in ("n", "file", "page", "score"):
            table.add_column(column, key=column)
        self.query_one("#question", Input).focus()

    @on(Input.Submitted, "#question")
    def asked(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.answer = ""
            self.first_evidence = []
            self.query_one("#first-evidence", Static).display = False
            self.query_one("#answer", Static).update("…")
            for selector in ("#stats", "#evidence"):
                self.query_one(selector, Static).update("")
            self.query_one("#citations", DataTable).clear()
            self.ask(event.value.strip())

    @work(exclusive=True, group="ask", exit_on_error=False)
    async def ask(self, question: str) -> None:
        async def stream() -> None:
            strategy = {True: "extract", False: "generate", None: None}[self.extract]
            async for event in self.client.ask_stream(question, strategy=strategy):
                if isinstance(event, EvidenceEvent):
                    self.post_message(AnswerEvidence(event.evidence))
                elif isinstance(event, TokenEvent):
                    self.post_message(AnswerToken(event.text))
                elif isinstance(event, DoneEvent):
                    self.post_message(AnswerDone(event))
                elif isinstance(event, ErrorEvent):
                    self.post_message(AnswerFailed(event))

        await self.call("ask", stream())

    def action_toggle_extract(self) -> None:
        """F2: the next answers quote the documents' best sentences (no chat model), or
        the model writes them (until then, the server's answer_mode decides)."""
        self.extract = not self.extract
        mode = (
            "extract: the documents' sentences, verbatim" if self.extract
            else "generate: the chat model writes them"
        )  # fmt: skip
        self.notify(f"answers: {mode}", title="Ask")

    def action_stop(self) -> None:
        """Escape stops an answer being streamed; otherwise it leaves the question field."""
        if any(w.is_running for w in self.workers if w.group == "ask"):
            self.workers.cancel_group(self, "ask")
            self.query_one("#stats", Static).update("stopped")
        else:
            self.action_leave_input()

    @work(exclusive=True, group="passage", exit_on_error=False)
    async def show_passage(self, evidence: list[Evidence]) -> None:
        """Fetch the first evidence's passage, to highlight the sentences within it (without
        it, the sentences stay shown as lines)."""
        first = evidence[0]
        try:
            page = await self.client.chunks(first.document_id, first.chunk_index, limit=1)
        except ApiError:
            return  # e.g. a query key may not read chunks: the lines stay
        for chunk in page.chunks:
            if chunk.index == first.chunk_index:
                self.post_message(EvidencePassage(chunk.text, evidence))

    def on_answer_evidence(self, message: AnswerEvidence) -> None:
        self.first_evidence = message.evidence
        if message.evidence:
            shown = self.query_one("#first-evidence", Static)
            shown.update(plain(first_evidence_text(message.evidence)))
            shown.display = True
            self.show_passage(message.evidence)

    def on_evidence_passage(self, message: EvidencePassage) -> None:
        if message.evidence is not self.first_evidence:
            return  # a passage of an earlier question's evidence
        self.query_one("#first-evidence", Static).update(in_passage(message.text, message.evidence))

    def on_answer_token(self, message: AnswerToken) -> None:
        self.answer += message.text
        self.query_one("#answer", Static).update(plain(self.answer))

    def on_answer_done(self, message: AnswerDone) -> None:
        done = message.done
        self.query_one("#answer", Static).update(plain(done.answer or self.answer))
        self.query_one("#stats", Static).update(plain(stats_line(done)))
        self.query_one("#evidence", Static).update(plain(evidence_text(done)))
        table = self.query_one("#citations", DataTable)
        for c in done.citations:
            row = (f"[{c.index}]", c.file_name, str(c.page or ""), f"{c.score:.3f}")
            table.add_row(*map(cell, row), key=str(c.index))

    def on_answer_failed(self, message: AnswerFailed) -> None:
        failed = f"the answer failed: {message.error.message}"
        self.query_one("#stats", Static).update(plain(failed))
