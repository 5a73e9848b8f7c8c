"""The real console driven with Pilot against a real appliance (in process, real models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static

from appliance.client import ApplianceClient
from tests.docs_factory import FACTS, make_md, make_pdf
from tests.tui.conftest import until, wait_job
from tui.app import AdminApp
from tui.screens.ask import AskScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.documents import DocumentsScreen
from tui.screens.ingest import FileRow, IngestScreen
from tui.screens.keys import KeysScreen, NewKeyScreen, SecretScreen

pytestmark = pytest.mark.slow


def text(widget: Static) -> str:
    return str(widget.render())


def table_names(table: DataTable[str]) -> list[str]:
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_ingest_two_files_then_delete_one_through_the_confirmation(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    docs = tmp_path / "shared"
    docs.mkdir()
    make_md(docs / "backups.md")
    make_pdf(docs / "facilities.pdf")
    app = AdminApp(live_client, interval=0.25, browse_root=docs)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, IngestScreen)
        screen.query_one("#path", Input).value = str(docs)
        await pilot.press("enter", "u")

        def both_done() -> bool:
            labels = [text(r.query_one(".file-label", Static)) for r in screen.query(FileRow)]
            return len(labels) == 2 and all(": done" in label for label in labels)

        await until(pilot, both_done, "both files done")
        assert "files 2/2" in text(screen.query_one("#overall-label", Static))

        await pilot.press("3")
        documents = app.screen
        assert isinstance(documents, DocumentsScreen)
        table = documents.query_one("#documents", DataTable)
        await until(pilot, lambda: table.row_count == 2, "two documents")
        await pilot.press("slash")
        await pilot.press(*"pdf")
        await until(pilot, lambda: table_names(table) == ["facilities.pdf"], "the filtered row")
        await pilot.press("escape", "d")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "facilities.pdf" in confirm.question
        await pilot.press("y")
        await until(pilot, lambda: table.row_count == 0, "the row gone")
        names = [d.file_name for d in (await live_client.documents()).documents]
        assert names == ["backups.md"]


async def test_a_refresh_keeps_the_cursor_on_the_same_document(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    """Regression: the table was cleared and refilled every refresh, so the cursor fell
    back to row 0 and `d` deleted another document."""
    files = [make_md(tmp_path / "backups.md"), make_pdf(tmp_path / "facilities.pdf")]
    await wait_job(live_client, (await live_client.upload(files)).job_id)
    app = AdminApp(live_client, interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, DocumentsScreen)
        table = screen.query_one("#documents", DataTable)
        await until(pilot, lambda: table.row_count == 2, "two documents")
        await pilot.press("down")
        chosen = str(table.get_row_at(table.cursor_row)[0])
        assert table.cursor_row == 1
        third = tmp_path / "printers.md"
        third.write_text("# Printers\n\nThe printer on floor two is called Gutenberg.\n")
        await wait_job(live_client, (await live_client.upload([third])).job_id)
        await until(pilot, lambda: table.row_count == 3, "the new document")
        for _ in range(5):  # several refreshes (every 0.2 s)
            await pilot.pause(0.2)
        assert str(table.get_row_at(table.cursor_row)[0]) == chosen
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen) and chosen in app.screen.question


async def test_a_failed_delete_is_a_notification_and_the_app_stays_up(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    """Regression: a 404 (deleted meanwhile) was uncaught in the worker and ended the app."""
    await wait_job(live_client, (await live_client.upload([make_md(tmp_path / "b.md")])).job_id)
    app = AdminApp(live_client, interval=100)  # no refresh between the two deletes
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, DocumentsScreen)
        table = screen.query_one("#documents", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the document")
        only = (await live_client.documents()).documents[0]
        await live_client.delete_document(only.id)  # someone else deleted it
        await pilot.press("d", "y")
        await until(
            pilot,
            lambda: any("Could not delete b.md" in str(n.message) for n in app._notifications),
            "the failed delete's notification",
        )
        assert app.is_running and isinstance(app.screen, DocumentsScreen)
        await pilot.press("1")  # and it goes on working
        assert isinstance(app.screen, DashboardScreen)


async def test_ask_streams_the_answer_with_evidence_and_a_citation(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    await wait_job(live_client, (await live_client.upload([make_pdf(tmp_path / "f.pdf")])).job_id)
    app = AdminApp(live_client, interval=100)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, AskScreen)
        await pilot.press(*"How often is the emergency generator tested?", "enter")
        citations = screen.query_one("#citations", DataTable)
        await until(pilot, lambda: citations.row_count > 0, "a citation")
        answer = text(screen.query_one("#answer", Static))
        assert answer.strip() and answer != "…"
        assert screen.answer.strip(), "tokens were streamed into the answer"
        assert "f.pdf" in str(citations.get_row_at(0)[1])
        evidence = text(screen.query_one("#evidence", Static))
        assert "f.pdf" in evidence and "generator" in evidence.lower()
        stats = text(screen.query_one("#stats", Static))
        assert "first token" in stats and "tok/s" in stats and "grounded" in stats
        assert FACTS["pdf"]  # the fact the evidence sentence came from


async def test_f2_goes_from_the_servers_default_to_extract_then_generate(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    await wait_job(live_client, (await live_client.upload([make_pdf(tmp_path / "f.pdf")])).job_id)
    sent: list[str | None] = []
    real = live_client.ask_stream

    def recording(question: str, **fields: Any) -> Any:  # the real call, its strategy noted
        sent.append(fields.get("strategy"))
        return real(question, **fields)

    live_client.ask_stream = recording  # type: ignore[method-assign]
    app = AdminApp(live_client, interval=100)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        screen = app.screen
        assert isinstance(screen, AskScreen)
        citations = screen.query_one("#citations", DataTable)
        stats = []
        for press_f2 in (False, True, True):
            if press_f2:
                await pilot.press("f2")
            question = screen.query_one("#question", Input)
            question.value = "How often is the emergency generator tested?"
            question.focus()
            await pilot.press("enter")
            await until(pilot, lambda: citations.row_count > 0, "a citation")
            await until(pilot, lambda: not any(w.is_running for w in screen.workers), "the end")
            stats.append(text(screen.query_one("#stats", Static)))
        assert sent == [None, "extract", "generate"], sent
        assert "quoted from the documents" in stats[1] and "tok/s" not in stats[1], stats
        assert "tok/s" in stats[2] and "prompt brief" in stats[2], stats


async def test_dashboard_is_ready_with_request_counts_and_keys_are_made_and_revoked(
    live_client: ApplianceClient,
) -> None:
    app = AdminApp(live_client, interval=0.25)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        readiness = screen.query_one("#readiness", Static)
        await until(pilot, lambda: "READY" in text(readiness), "ready")
        assert "NOT READY" not in text(readiness)
        status = screen.query_one("#status", Static)
        await until(pilot, lambda: screen.window.requests_total > 0, "a request count")
        await until(pilot, lambda: " 0 requests" not in text(status), "the count shown")
        assert "chat" in text(status) and "embedding" in text(status)
        assert screen.window.series["rss"].now and screen.window.series["rss"].now > 50

        await pilot.press("6")
        keys = app.screen
        assert isinstance(keys, KeysScreen)
        table = keys.query_one("#keys", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the bootstrap key")
        await pilot.press("n")
        assert isinstance(app.screen, NewKeyScreen)
        await pilot.press(*"helpdesk", "enter")
        await until(pilot, lambda: isinstance(app.screen, SecretScreen), "the secret")
        secret = app.screen
        assert isinstance(secret, SecretScreen) and secret.created.key.startswith("rag_")
        await pilot.press("escape")
        await until(pilot, lambda: table.row_count == 2, "the new key listed")
        made = secret.created
        assert (await live_client.keys())[-1].id == made.id
        table.move_cursor(row=table.get_row_index(made.id))
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen) and made.id in app.screen.question
        await pilot.press("y")
        await until(
            pilot, lambda: str(table.get_cell(made.id, "revoked")) != "-", "the key revoked"
        )
        revoked = next(k for k in await live_client.keys() if k.id == made.id)
        assert revoked.revoked_at is not None


async def test_sources_screen_shows_a_folder_and_scans_it(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    from appliance.config.sources import SourceSettings
    from tui.screens.sources import SourcesScreen

    share = tmp_path / "share"
    share.mkdir()
    make_md(share / "backups.md")
    await live_client.add_source(SourceSettings(id="handbook", path=str(share)))
    app = AdminApp(live_client, interval=0.25)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("8")
        screen = app.screen
        assert isinstance(screen, SourcesScreen)
        table = screen.query_one("#sources", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the folder listed")
        assert str(table.get_cell("handbook", "result")) == "never scanned"
        await pilot.press("s")
        await until(
            pilot, lambda: str(table.get_cell("handbook", "result")).startswith("1 new"),
            "the scan's report",
        )  # fmt: skip
        [doc] = (await live_client.documents()).documents
        assert (doc.file_name, doc.source) == ("backups.md", "handbook")


async def test_search_screen_evaluates_a_question_set(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    import json

    from tui.screens.evaluate import EvaluateScreen
    from tui.screens.search import SearchScreen

    files = [make_pdf(tmp_path / "f.pdf"), make_md(tmp_path / "backups.md")]
    await wait_job(live_client, (await live_client.upload(files)).job_id)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "When is the emergency generator tested?", "file": "f.pdf",
                    "fact": "Tuesday"}) + "\n"
        + json.dumps({"question": "How long are nightly backups kept?", "file": "backups.md"})
    )  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no file"}\n')
    app = AdminApp(live_client, interval=100)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("5", "escape", "e")  # escape leaves the query field
        assert isinstance(app.screen, EvaluateScreen)
        path = app.screen.query_one("#eval-path", Input)
        path.value = str(bad)
        await pilot.press("enter")
        assert isinstance(app.screen, EvaluateScreen)  # refused, said why, still open
        assert "line 1" in text(app.screen.query_one("#eval-error", Static))
        path.value = str(qa)
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        status = screen.query_one("#hit-text", Static)
        await until(pilot, lambda: "recall@5" in text(status), "the evaluation's summary")
        table = screen.query_one("#hits", DataTable)
        assert table.row_count == 2
        assert [str(c.label) for c in table.columns.values()][:3] == ["#", "rank", "expected file"]
        assert str(table.get_row_at(0)[1]) == "#1" and str(table.get_row_at(1)[1]) == "#1"
        assert "qa.jsonl" in text(status) and "mrr 1.0" in " ".join(text(status).split())
