"""Logs: the appliance's recent log lines, following, with a level filter."""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import RichLog, Select, Static

from appliance.wire.status import LogLine
from tui.messages import LogsLoaded
from tui.screens.base import ConsoleScreen
from tui.widgets.plain import plain

LEVELS = ("debug", "info", "warning", "error")


def format_line(line: LogLine) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(line.time))
    return f"{when} {line.level.upper():<7} {line.logger}: {line.message}"


class LogsScreen(ConsoleScreen):
    MODE = "logs"
    POLL_S: ClassVar[float | None] = 1.0
    CSS_PATH = "logs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow on/off"),
        Binding("l", "next_level", "Level"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.after = 0
        self.level = "info"
        self.following = True
        self.shown = 0

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with Horizontal(id="logs-bar"):
            yield Select(
                [(f"level ≥ {lv}", lv) for lv in LEVELS], value=self.level, allow_blank=False,
                id="level",
            )  # fmt: skip
            yield Static("", id="logs-state")
        yield RichLog(id="log", wrap=True, highlight=False, max_lines=5000)
        yield from self.compose_footer()

    def poll(self) -> None:
        if self.following:
            self.load(self.after, self.level)

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def load(self, after: int, level: str) -> None:
        page = await self.call("read the logs", self.client.logs(after, level), background=True)
        if page is not None:
            self.post_message(LogsLoaded(page, level))

    def on_logs_loaded(self, message: LogsLoaded) -> None:
        if message.level != self.level:  # an answer for the level before a change
            return
        log = self.query_one("#log", RichLog)
        for line in message.page.lines:
            log.write(plain(format_line(line)))
        self.shown += len(message.page.lines)
        self.after = message.page.last_seq
        self._show_state()

    def _show_state(self) -> None:
        state = "following" if self.following else "paused (f: follow)"
        self.query_one("#logs-state", Static).update(
            f" {state} · {self.shown} lines at {self.level} or above"
        )

    @on(Select.Changed, "#level")
    def level_changed(self, event: Select.Changed) -> None:
        level = str(event.value)
        if level == self.level:
            return
        self.level, self.after, self.shown = level, 0, 0
        self.query_one("#log", RichLog).clear()
        self._show_state()
        self.load(0, level)

    def action_next_level(self) -> None:
        select = self.query_one("#level", Select)
        select.value = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        self._show_state()
        if self.following:
            self.poll()
