"""The admin console: one App, a mode per screen, the client passed in (HTTP only).

The App owns the link to the appliance: a heartbeat (readiness and status) every
two seconds sets `connection`, which every screen's banner shows in plain words, and
retries for as long as the server is away. Screens poll only while visible; workers
do the requests and post typed messages; a failed request becomes a notification.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from appliance.client import ApiError, ApplianceClient
from appliance.wire.status import Readiness, StatusRead
from tui.messages import CallFailed
from tui.screens.ask import AskScreen
from tui.screens.collections import CollectionsScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.documents import DocumentsScreen
from tui.screens.ingest import IngestScreen
from tui.screens.keys import KeysScreen
from tui.screens.logs import LogsScreen
from tui.screens.search import SearchScreen
from tui.screens.sources import SourcesScreen
from tui.state import Connection, State
from tui.widgets.nav import SCREENS
from tui.widgets.plain import clean

HEARTBEAT_S = 2.0


def _mode_bindings() -> list[BindingType]:
    return [
        Binding(f"{key},f{key}", f"switch_mode('{mode}')", title, show=False)
        for mode, key, title in SCREENS
    ]


class AdminApp(App[None]):
    TITLE = "RAG appliance console"
    CSS_PATH = "app.tcss"
    MODES: ClassVar[dict[str, type[Screen[None]]]] = {  # type: ignore[assignment]
        "dashboard": DashboardScreen,
        "ingest": IngestScreen,
        "documents": DocumentsScreen,
        "ask": AskScreen,
        "search": SearchScreen,
        "keys": KeysScreen,
        "logs": LogsScreen,
        "sources": SourcesScreen,
        "collections": CollectionsScreen,
    }
    DEFAULT_MODE = "dashboard"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        *_mode_bindings(),
        Binding("q", "quit", "Quit"),
    ]

    connection: reactive[Connection] = reactive(
        Connection("connecting", "Connecting to the appliance…")
    )
    readiness: reactive[Readiness | None] = reactive(None)
    server_status: reactive[StatusRead | None] = reactive(None)

    def __init__(
        self, client: ApplianceClient, *, interval: float = 1.0, browse_root: Path | None = None
    ) -> None:
        """`interval` scales every poll (tests slow them down or speed them up);
        `browse_root` is where the Ingest screen's file browser starts."""
        super().__init__()
        self.client = client
        self.interval = interval
        self.browse_root = browse_root or Path.cwd()
        self._told: set[str] = set()  # background refusals already shown

    def on_mount(self) -> None:
        self.sub_title = self.client.base_url
        self.heartbeat()
        self.set_interval(HEARTBEAT_S * self.interval, self.heartbeat)

    @work(exclusive=True, group="heartbeat", exit_on_error=False)
    async def heartbeat(self) -> None:
        url = self.client.base_url
        retry = f"Retrying every {HEARTBEAT_S * self.interval:g} s."
        try:
            ready = await self.client.readiness()
            status = await self.client.status()
        except ApiError as exc:
            state: State = (
                "key_refused" if exc.key_refused else "unreachable" if exc.unreachable
                else "not_ready"
            )  # fmt: skip
            text = f"{exc.message[:1].upper()}{exc.message[1:]}. {retry}"
            self.connection = Connection(state, text)
            return
        self.readiness, self.server_status = ready, status
        if ready.status == "ready":
            self.connection = Connection("ok", f"Connected to {url}: ready.")
        else:
            down = "; ".join(f"{k}: {v}" for k, v in ready.checks.items() if v != "ok")
            self.connection = Connection(
                "not_ready", f"The appliance at {url} answers but is not ready ({down}). {retry}"
            )

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification is plain text, whatever `markup` says: they name files,
        keys and the server's errors, which must never be parsed as markup."""
        super().notify(
            clean(message), title=clean(title), severity=severity, timeout=timeout, markup=False
        )

    def on_call_failed(self, message: CallFailed) -> None:
        link_lost = message.error.unreachable or message.error.key_refused
        if link_lost:
            self.heartbeat()  # the banner says it, in plain words, and retries
        if link_lost and message.background:
            return
        if message.background and message.error.status == 403:  # e.g. a query key's polls
            if message.doing in self._told:
                return  # said once; a poll would repeat it every second
            self._told.add(message.doing)
        self.notify(f"Could not {message.doing}: {message.error}", severity="error", timeout=8)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A bug in a worker is shown, never a traceback that ends the console."""
        if event.state is WorkerState.ERROR:
            self.notify(
                f"Internal error in the console ({event.worker.name}): {event.worker.error!r}",
                severity="error",
                timeout=10,
            )

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, key, title in SCREENS:
            yield SystemCommand(
                f"Go to {title}", f"Open the {title} screen (key {key} or F{key})",
                lambda mode=mode: self.switch_mode(mode),
            )  # fmt: skip
        yield SystemCommand(
            "Reconnect now", "Check the appliance again without waiting", self.heartbeat
        )
