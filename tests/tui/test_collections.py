"""The Collections screen and the keys' collections, driven with Pilot against a real
appliance (in process, real models)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from appliance.client import ApplianceClient
from tests.docs_factory import make_md
from tests.tui.conftest import until, wait_job
from tui.app import AdminApp
from tui.screens.collections import CollectionsScreen, NameScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.documents import DocumentsScreen
from tui.screens.ingest import FileRow, IngestScreen
from tui.screens.keys import KeysScreen, NewKeyScreen, SecretScreen

pytestmark = pytest.mark.slow


def names(table: DataTable[object]) -> list[str]:
    return sorted(str(table.get_row_at(i)[0]) for i in range(table.row_count))


def row_of(table: DataTable[object], name: str) -> int:
    return next(i for i in range(table.row_count) if str(table.get_row_at(i)[0]) == name)


async def test_collections_screen_creates_renames_and_deletes(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    app = AdminApp(live_client, interval=0.25)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("9")
        screen = app.screen
        assert isinstance(screen, CollectionsScreen)
        table = screen.query_one("#collections", DataTable)
        await until(pilot, lambda: names(table) == ["default"], "the default collection")

        # n: a name the server would refuse is refused here, the form stays open
        await pilot.press("n")
        assert isinstance(app.screen, NameScreen)
        await pilot.press(*"HR!", "enter")
        assert isinstance(app.screen, NameScreen)
        app.screen.query_one("#collection-name", Input).value = "hr"
        await pilot.press("enter")
        await until(pilot, lambda: names(table) == ["default", "hr"], "the new collection")

        # r: rename it, the form starts from its name
        table.move_cursor(row=row_of(table, "hr"))
        await pilot.press("r")
        form = app.screen
        assert isinstance(form, NameScreen)
        assert form.query_one("#collection-name", Input).value == "hr"
        form.query_one("#collection-name", Input).value = "people"
        await pilot.press("enter")
        await until(pilot, lambda: names(table) == ["default", "people"], "the new name")

        # d on a collection with documents: asked, then deleted with them (force)
        files = [make_md(tmp_path / "backups.md")]
        await wait_job(live_client, (await live_client.upload(files, "people")).job_id)
        people = next(c for c in await live_client.collections() if c.name == "people")
        await until(
            pilot, lambda: str(table.get_cell(people.id, "documents")) == "1", "its document"
        )
        table.move_cursor(row=row_of(table, "people"))
        await pilot.press("d")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "people and its 1 documents" in confirm.question
        await pilot.press("n")  # kept
        assert {c.name for c in await live_client.collections()} == {"default", "people"}
        await pilot.press("d", "y")
        await until(pilot, lambda: names(table) == ["default"], "the collection gone")
        assert (await live_client.documents()).documents == []

        # d on an empty one: asked, deleted without force
        await live_client.create_collection("finance")
        await until(pilot, lambda: "finance" in names(table), "the empty collection")
        table.move_cursor(row=row_of(table, "finance"))
        await pilot.press("d")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert "empty collection finance" in confirm.question
        await pilot.press("y")
        await until(pilot, lambda: names(table) == ["default"], "the empty one gone")


async def test_a_key_is_made_for_some_collections_and_listed_with_them(
    live_client: ApplianceClient,
) -> None:
    await live_client.create_collection("hr")
    app = AdminApp(live_client, interval=0.25)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("6")
        screen = app.screen
        assert isinstance(screen, KeysScreen)
        table = screen.query_one("#keys", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the bootstrap key")
        [admin] = await live_client.keys()
        assert str(table.get_cell(admin.id, "collections")) == "*"

        await pilot.press("n")
        form = app.screen
        assert isinstance(form, NewKeyScreen)
        await pilot.press(*"helpdesk")
        form.query_one("#key-collections", Input).value = "hr, Payroll!"
        await pilot.press("enter")
        assert app.screen is form  # a name the server would refuse: said, the form stays
        form.query_one("#key-collections", Input).value = "hr"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SecretScreen), "the secret")
        secret = app.screen
        assert isinstance(secret, SecretScreen)
        assert secret.created.collections == ["hr"]
        await pilot.press("escape")
        await until(pilot, lambda: table.row_count == 2, "the new key listed")
        assert str(table.get_cell(secret.created.id, "collections")) == "hr"
        made = next(k for k in await live_client.keys() if k.id == secret.created.id)
        assert made.collections == ["hr"]


async def test_an_upload_goes_into_the_collection_named_and_documents_show_it(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    await live_client.create_collection("hr")
    docs = tmp_path / "shared"
    docs.mkdir()
    make_md(docs / "backups.md")
    app = AdminApp(live_client, interval=0.25, browse_root=docs)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("2")
        screen = app.screen
        assert isinstance(screen, IngestScreen)
        screen.query_one("#path", Input).value = str(docs)
        await pilot.press("enter")  # added; the tree has the focus, where u uploads
        collection = screen.query_one("#collection", Input)
        collection.value = "Not A Name"
        await pilot.press("u")
        assert screen.chosen == [docs]  # refused before anything was sent
        collection.value = "hr"
        await pilot.press("u")

        def done() -> bool:
            labels = [
                str(r.query_one(".file-label", Static).render()) for r in screen.query(FileRow)
            ]
            return len(labels) == 1 and labels[0].startswith("backups.md: done")

        await until(pilot, done, "the file done")
        [doc] = (await live_client.documents()).documents
        assert doc.collection == "hr"

        await pilot.press("3")
        documents = app.screen
        assert isinstance(documents, DocumentsScreen)
        table = documents.query_one("#documents", DataTable)
        await until(pilot, lambda: table.row_count == 1, "the document")
        assert str(table.get_cell(doc.id, "collection")) == "hr"
        await pilot.press("slash", *"default")
        await until(pilot, lambda: table.row_count == 0, "no document in default")
