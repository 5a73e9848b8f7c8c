"""What every console screen shares: the nav bar, the connection banner, the footer,
and polling that runs only while the screen is visible."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input

from appliance.client import ApiError, ApplianceClient
from tui.messages import CallFailed
from tui.widgets.banner import ConnectionBanner
from tui.widgets.nav import NavBar

if TYPE_CHECKING:
    from tui.app import AdminApp

T = TypeVar("T")


class ConsoleScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave_input", "Leave the field", show=False),
    ]
    MODE: ClassVar[str] = ""
    POLL_S: ClassVar[float | None] = None  # seconds between polls at interval 1.0

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None

    @property
    def console(self) -> AdminApp:
        """The app, typed: a screen never imports it at run time (tui.app imports the screens)."""
        return cast("AdminApp", self.app)

    @property
    def client(self) -> ApplianceClient:
        return self.console.client

    def compose_chrome(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield ConnectionBanner(id="banner")

    def compose_footer(self) -> ComposeResult:
        yield Footer()

    def on_mount(self) -> None:
        if self.POLL_S is not None:
            every = self.POLL_S * self.console.interval
            self._timer = self.set_interval(every, self.poll, pause=True)

    def on_screen_resume(self) -> None:
        if self._timer is not None:
            self.poll()
            self._timer.resume()

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def action_leave_input(self) -> None:
        """Escape in a text field moves on, so the number keys switch screens again."""
        if isinstance(self.focused, Input):
            self.focus_next()

    def poll(self) -> None:
        """Start the screen's refresh worker (screens with POLL_S override this)."""

    async def call(self, doing: str, request: Awaitable[T], background: bool = False) -> T | None:
        """Await a client call; a failure is posted (and shown by the app), not raised.
        `background`: a poll, whose loss of the server the banner already tells."""
        try:
            return await request
        except ApiError as exc:
            self.post_message(CallFailed(doing, exc, background))
            return None

    async def succeeded(self, doing: str, request: Awaitable[object]) -> bool:
        """Await a client call that returns nothing; whether it worked (failures posted)."""
        try:
            await request
        except ApiError as exc:
            self.post_message(CallFailed(doing, exc))
            return False
        return True
