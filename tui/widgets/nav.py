"""The line of screens at the top: each with its key, the current one marked."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

# (mode, key, title): the order of the number keys
SCREENS = (
    ("dashboard", "1", "Dashboard"),
    ("ingest", "2", "Ingest"),
    ("documents", "3", "Documents"),
    ("ask", "4", "Ask"),
    ("search", "5", "Search"),
    ("keys", "6", "Keys"),
    ("logs", "7", "Logs"),
    ("sources", "8", "Sources"),
)


class NavBar(Static):
    """`[1 Dashboard]  2 Ingest  …`: brackets mark the current screen without colour."""

    def __init__(self, current: str) -> None:
        super().__init__(id="nav")
        self.current = current

    def on_mount(self) -> None:
        line = Text()
        for mode, key, title in SCREENS:
            if mode == self.current:
                line.append(f"[{key} {title}]", style="bold reverse")
            else:
                line.append(f" {key} {title} ")
        self.update(line)
