"""Evaluate a question set (JSONL on this machine) against the live index: the dialog."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Static

from appliance.client.evaluation import EvalQuestion, EvalSetError, read_questions
from tui.widgets.plain import plain


class EvaluateScreen(ModalScreen[tuple[list[EvalQuestion], bool, str] | None]):
    """Asks for the set's path; dismisses with its questions, whether to generate answers,
    and the set's name (None: cancelled). A set that cannot be read is said here."""

    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, default: str = "") -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                "Evaluate a question set: a JSONL file on this machine, one "
                '{"question", "file", "fact"?} per line. Enter runs it.'
            )
            yield Input(value=self.default, placeholder="path/to/questions.jsonl", id="eval-path")
            yield Checkbox("also generate answers (accuracy, evidence, timings)", True,
                           id="eval-answers")  # fmt: skip
            yield Static("", id="eval-error")

    @on(Input.Submitted, "#eval-path")
    def submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        try:
            questions = read_questions(path)
        except EvalSetError as exc:
            self.query_one("#eval-error", Static).update(plain(str(exc)))
            return
        self.dismiss((questions, self.query_one("#eval-answers", Checkbox).value, path.name))
