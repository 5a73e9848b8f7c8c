"""Snapshots of every screen at 80×24 and 160×48 (pytest-textual-snapshot; SVGs under
__snapshots__/; `pytest --snapshot-update` after a deliberate change, then look at them).

The data comes from FrozenAppliance (tests/tui/frozen.py): fixed bodies, so the same
bytes every run; the client, its parsing and the screens are the real ones."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, DirectoryTree, Static

from appliance.client import ApplianceClient
from tests.tui.frozen import frozen_transport
from tui.app import AdminApp

SIZES = [(80, 24), (160, 48)]


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Times are shown in local time: UTC here, so the snapshots are the same anywhere."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def frozen_app(tmp_path: Path) -> AdminApp:
    shared = tmp_path / "shared-docs"
    shared.mkdir(exist_ok=True)
    for name in ("backups.md", "facilities.pdf"):
        (shared / name).write_text("x")
    client = ApplianceClient(
        "http://appliance.test", "rag_frozen_key", transport=frozen_transport()
    )
    return AdminApp(client, interval=3600, browse_root=shared)  # one poll per screen


async def settle(pilot: Pilot[None], ready: Callable[[], bool]) -> None:
    # until the screen shows its data, for at most 4 s (200 x 20 ms): not a deadline that
    # fails (one screen's predicate, chunks at 80x24, never holds: it waits the 4 s), the
    # snapshot compared after is the check
    for _ in range(200):
        if ready():
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await pilot.wait_for_scheduled_animations()


def on(
    keys: str, ready: Callable[[AdminApp], bool], *more: str
) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, AdminApp)
        await settle(pilot, lambda: app.connection.state == "ok")
        await pilot.press(*keys)
        if more:
            await settle(pilot, lambda: ready(app))
            await pilot.press(*more)
        await settle(pilot, lambda: ready(app))

    return run


def rows(selector: str, n: int = 1) -> Callable[[AdminApp], bool]:
    def ready(app: AdminApp) -> bool:
        tables = app.screen.query(selector)
        return bool(tables) and tables.first(DataTable).row_count >= n

    return ready


def static_has(selector: str, needle: str) -> Callable[[AdminApp], bool]:
    def ready(app: AdminApp) -> bool:
        found = app.screen.query(selector)
        return bool(found) and needle in str(found.first(Static).render())

    return ready


SCREENS: dict[str, Callable[[Pilot[None]], Awaitable[None]]] = {
    "dashboard": on("1", static_has("#status", "SmolLM2")),
    "ingest": on("2", lambda app: bool(app.screen.query_one(DirectoryTree).root.children)),
    "documents": on("3", rows("#documents", 3)),
    "chunks": on("3", static_has("#chunks-title", "2 of 2"), "enter"),
    "ask": on("4", rows("#citations"), *"When is the generator tested?", "enter"),
    "search": on("5", rows("#hits", 2), *"generator", "enter"),
    "keys": on("6", rows("#keys", 2)),
    "logs": on("7", static_has("#logs-state", "3 lines")),
    "sources": on("8", rows("#sources", 2)),
    "collections": on("9", rows("#collections", 2)),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(screen: str, size: tuple[int, int], snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = frozen_app(tmp_path)
    try:
        assert snap_compare(app, terminal_size=size, run_before=SCREENS[screen])
    finally:
        asyncio.run(app.client.aclose())
