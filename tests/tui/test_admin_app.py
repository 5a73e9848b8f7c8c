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
    second = tmp_path / "second.md"
    second.write_text("# Printers\n\nThe third floor printer is called Gutenberg.\n")
    job = client.upload([make_md(tmp_path / "backups.md"), second])
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
        assert table.row_count == 2
        # the cursor stays on the second document across refreshes (clear() used to
        # move it to row 0, and `d` deleted the wrong file)
        app.query_one(TabbedContent).active = "documents"
        await pilot.pause(0.1)
        table.focus()
        await pilot.press("down")
        second = str(table.get_row_at(1)[1])
        assert table.cursor_row == 1
        await pilot.pause(1.0)  # three refreshes
        assert str(table.get_row_at(table.cursor_row)[1]) == second
        await pilot.press("d")  # asks first, naming the file
        await pilot.pause(0.2)
        assert second in str(app.screen.query_one("#confirm-text", Static).render())
        await pilot.press("n")
        await pilot.pause(0.5)
        assert table.row_count == 2
        await pilot.press("d", "y")
        for _ in range(50):
            await pilot.pause(0.1)
            if table.row_count == 1:
                break
        assert [d.file_name for d in client.documents().documents] == [
            n for n in ("backups.md", "second.md") if n != second
        ]
        # a delete that fails (the document is gone already) is said, the app stays up
        app.delete("no-such-document", "ghost.md")
        await pilot.pause(1.0)
        assert app.is_running
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
