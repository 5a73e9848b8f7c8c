"""The console when the appliance is away or refuses the key: plain words, retries, no crash."""

from __future__ import annotations

import socket

import httpx
import pytest
from textual.widgets import Static

from appliance.client import ApplianceClient
from tests.tui.conftest import Live, until
from tui.app import AdminApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.documents import DocumentsScreen


def banner(app: AdminApp) -> Static:
    return app.screen.query_one("#banner", Static)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_server_is_said_in_plain_words_and_retried() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: real refused connections
    client = ApplianceClient(url, "rag_x_y")
    app = AdminApp(client, interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "unreachable", "the unreachable state")
        shown = str(banner(app).render())
        assert f"Cannot reach the appliance at {url}" in shown and "Retrying" in shown
        assert banner(app).display
        await pilot.press("3")  # every screen says it, and polls go on without a crash
        assert isinstance(app.screen, DocumentsScreen)
        await pilot.pause(0.5)
        assert "Cannot reach" in str(banner(app).render()) and app.is_running
        assert not app._notifications, "background polls do not pile up toasts"
    await client.aclose()


class OutageTransport(httpx.AsyncBaseTransport):
    """A network outage switch (named fake: a cable cannot be pulled in a test) in front
    of the real in-process appliance."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.mark.slow
async def test_the_console_recovers_when_the_server_comes_back(live: Live) -> None:
    outage = OutageTransport(live.transport)
    client = ApplianceClient(live.url, live.key, transport=outage)
    app = AdminApp(client, interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "unreachable", "the outage")
        outage.down = False
        await until(pilot, lambda: app.connection.state == "ok", "the reconnection")
        assert not banner(app).display
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        await until(pilot, lambda: "READY" in str(screen.query_one("#readiness").render()), "ready")
    await client.aclose()


@pytest.mark.slow
async def test_a_wrong_key_is_said_in_plain_words(live: Live) -> None:
    client = ApplianceClient(live.url, "rag_nope_wrong", transport=live.transport)
    app = AdminApp(client, interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.connection.state == "key_refused", "the key refused")
        shown = str(banner(app).render())
        assert "refused the API key" in shown and "--key" in shown and "APPLIANCE_API_KEY" in shown
        assert "Retrying" in shown
        await pilot.press("6")
        await pilot.pause(0.3)
        assert app.is_running and "refused the API key" in str(banner(app).render())
    await client.aclose()
