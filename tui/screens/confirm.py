"""A yes/no question before anything that cannot be undone, naming what it touches."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets.plain import plain


class ConfirmScreen(ModalScreen[bool]):
    """`y` answers yes, `n` or Escape no. The question names what it touches (a file,
    a key), shown as it is."""

    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "delete") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(plain(f"{self.question}\n\ny: {self.yes}    n: keep"), id="confirm-text")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
