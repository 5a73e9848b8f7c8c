"""What every console screen shares: the nav bar, the connection banner, the footer,
and polling that runs only while the screen is visible."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, ClassVar, TypeVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from appliance.client import ApiError, ApplianceClient
from tui.messages import CallFailed
from tui.widgets.banner import ConnectionBanner
from tui.widgets.nav import NavBar

if TYPE_CHECKING:
    from tui.app import AdminApp

T = TypeVar("T")


class ConsoleScreen(Screen[None]):
    MODE: ClassVar[str] = ""
    POLL_S: ClassVar[float | None] = None  # seconds between polls at interval 1.0

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None

    @property
    def console(self) -> AdminApp:
        from tui.app import AdminApp

        assert isinstance(self.app, AdminApp)
        return self.app

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

    def poll(self) -> None:
        """Start the screen's refresh worker (screens with POLL_S override this)."""

    async def call(self, doing: str, request: Awaitable[T]) -> T | None:
        """Await a client call; a failure is posted (and shown by the app), not raised."""
        try:
            return await request
        except ApiError as exc:
            self.post_message(CallFailed(doing, exc))
            return None

    async def succeeded(self, doing: str, request: Awaitable[object]) -> bool:
        """Await a client call that returns nothing; whether it worked (failures posted)."""
        try:
            await request
        except ApiError as exc:
            self.post_message(CallFailed(doing, exc))
            return False
        return True
