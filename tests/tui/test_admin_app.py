"""The real Textual app, driven with Pilot, against a real appliance server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static, TabbedContent

from tests.conftest import server_env
from tests.docs_factory import make_md
from tests.e2e.server import ServerProcess
from tui.app import AdminApp, Snapshot
from tui.client import ApplianceClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("tui-data")
    log = tmp_path_factory.mktemp("tui-logs") / "server.log"
    proc = ServerProcess(server_env(data, models_dir), log).start()
    yield proc
    proc.stop()


async def test_shows_health_documents_and_deletes(server: ServerProcess, tmp_path: Path) -> None:
    client = ApplianceClient(server.url, server.key)
    job = client.upload([make_md(tmp_path / "backups.md")])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if next(j for j in client.jobs() if j.id == job.job_id).state == "done":
            break
        time.sleep(0.1)
    app = AdminApp(client, refresh_s=0.3)
    async with app.run_test() as pilot:
        for _ in range(50):
            await pilot.pause(0.1)
            if app.last is not None and app.last.documents is not None:
                break
        health = str(app.query_one("#health-text", Static).render())
        assert "ready" in health and "vector_store" in health
        table = app.query_one("#documents-table", DataTable)
        assert table.row_count == 1
        await pilot.press("d")
        for _ in range(50):
            await pilot.pause(0.1)
            if table.row_count == 0:
                break
        assert table.row_count == 0
    assert client.documents().total == 0
    client.close()


async def test_unreachable_server_is_shown_not_fatal() -> None:
    client = ApplianceClient("http://127.0.0.1:9", timeout=0.5)
    app = AdminApp(client, refresh_s=5)
    async with app.run_test() as pilot:
        for _ in range(30):
            await pilot.pause(0.1)
            if app.last is not None:
                break
        assert "cannot reach" in str(app.query_one("#health-text", Static).render())
    client.close()


async def test_snapshot_after_the_screen_is_gone_is_ignored() -> None:
    """A thread fetch can finish while the app tears its screen down (seen in CI): no crash."""
    client = ApplianceClient("http://127.0.0.1:9", timeout=0.5)
    app = AdminApp(client, refresh_s=60)
    async with app.run_test() as pilot:
        await app.query_one(TabbedContent).remove()
        app.post_message(Snapshot(None, None, [], {}, "late"))
        await pilot.pause(0.1)
        assert app.last is not None and app.last.error == "late"
        assert app.is_running
    client.close()
