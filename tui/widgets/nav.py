"""The line of screens at the top: each with its key, the current one marked. On a
narrow terminal it wraps between screens, never inside one's name."""

from __future__ import annotations

from rich.text import Text
from textual import events
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
    ("collections", "9", "Collections"),
)


def nav_line(current: str, width: int) -> Text:
    """`[1 Dashboard]  2 Ingest  …`, brackets marking the current screen without colour,
    broken between screens to fit `width` (0: one line)."""
    line = Text(end="")
    used = 0
    for mode, key, title in SCREENS:
        item = f"[{key} {title}]" if mode == current else f" {key} {title} "
        if used and width and used + len(item) > width:
            line.append("\n")
            used = 0
        line.append(item, style="bold reverse" if mode == current else "")
        used += len(item)
    return line


class NavBar(Static):
    def __init__(self, current: str) -> None:
        super().__init__(id="nav")
        self.current = current

    def on_mount(self) -> None:
        self.update(nav_line(self.current, self.size.width))

    def on_resize(self, event: events.Resize) -> None:
        self.update(nav_line(self.current, event.size.width))
