"""The connection state in plain words, on every screen, hidden while all is well."""

from __future__ import annotations

from textual.widgets import Static

from tui.state import Connection
from tui.widgets.plain import plain


class ConnectionBanner(Static):
    def on_mount(self) -> None:
        self.watch(self.app, "connection", self.show, init=True)

    def show(self, connection: Connection) -> None:
        self.display = connection.state != "ok"
        self.set_class(connection.state in ("unreachable", "key_refused"), "-down")
        self.update(plain(connection.text))  # holds server words
