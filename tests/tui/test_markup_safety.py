"""Server strings are shown as plain text on every screen (issue 19, item 6).

File names, document text, answers, evidence, key names, folder paths, scan reports and
log lines come from whoever wrote the files. Parsed as markup, `[/]x.txt` raised
MarkupError (the console ended) and `[@click=app.quit]` became a link that quit it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Static

from appliance.client import ApplianceClient
from appliance.config.sources import SourceSettings
from appliance.domain.types import Citation, DoneEvent, Evidence, Timings
from tests.docs_factory import FACTS
from tests.tui.conftest import WAIT_S, until, wait_job
from tui.app import AdminApp
from tui.messages import AnswerDone
from tui.screens.ask import HIGHLIGHT, AskScreen, in_passage
from tui.screens.chunks import ChunksScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.documents import DocumentsScreen
from tui.screens.evaluate import EvaluateScreen
from tui.screens.ingest import FileRow, IngestScreen
from tui.screens.keys import KeysScreen
from tui.screens.logs import LogsScreen
from tui.screens.search import SearchScreen
from tui.screens.sources import SourcesScreen
from tui.widgets.plain import cell, clean, plain

QUIT = "[@click=app.quit]"
FACT = FACTS["pdf"]  # the emergency generator: what the questions find
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m"  # clear screen, set the title, C1 CSI


def test_evidence_is_highlighted_within_its_passage_as_plain_text() -> None:
    """Issue 22: the first evidence sentence is shown inside its passage, highlighted; the
    passage's markup and escapes stay text, and a sentence whose offsets do not cut this
    text (another chunk's) is a line below, not a wrong highlight."""
    before = f"{QUIT} [bold]intro[/bold]\r\n{ESCAPES} "
    text = f"{before}{FACT} Then more."
    start = len(before)

    def evidence(doc: str, at: int, said: str, citation: int) -> Evidence:
        return Evidence(doc, "[red]f.pdf", 0, at, at + len(said), said, 0.8, citation)

    shown = in_passage(text, [evidence("d1", start, FACT, 1), evidence("d2", 0, "Elsewhere.", 2)])
    assert QUIT in shown.plain and "[bold]intro[/bold]" in shown.plain and "\x1b" not in shown.plain
    assert shown.plain.startswith("From the documents: [1] [red]f.pdf")
    [span] = [s for s in shown.spans if s.style == HIGHLIGHT]
    assert shown.plain[span.start : span.end] == FACT  # the \r dropped before it: still exact
    assert shown.plain.rstrip().endswith('[2] [red]f.pdf: "Elsewhere."')


def hostile_text(title: str) -> str:
    """A document's text: the markup first (so a search snippet holds it), then the fact."""
    return (
        f"[/] closes nothing, {QUIT} quits, [link=http://x]links[/link], [bold red]shouts. "
        f"{ESCAPES} {title} says: {FACT}\n"
    )


def test_plain_keeps_brackets_and_shows_control_characters() -> None:
    shown = plain(f"[/]x.txt {QUIT}q\n\x1b[31mred\x07\r\t\u202eexe.txt")
    assert shown.plain == "[/]x.txt [@click=app.quit]q\n␛[31mred␇\t\ufffdexe.txt"
    assert not shown.spans and not shown.style  # no style, no link, no action
    one = cell("a\nb\tc\x9b")
    assert (one.plain, one.no_wrap, one.end) == ("a␊b c\ufffd", True, "")
    assert clean("plain words, nothing to do") == "plain words, nothing to do"


def screen_text(app: AdminApp) -> str:
    """What the terminal shows now: every line of the screen, toasts included."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def console(pilot: Pilot[None]) -> AdminApp:
    assert isinstance(pilot.app, AdminApp)
    return pilot.app


async def shows(pilot: Pilot[None], *needles: str) -> None:
    """Wait until the screen shows each needle literally; and never a control character
    a document or name held (ESC, C1 CSI) on its way to the terminal."""
    for needle in needles:

        def shown(needle: str = needle) -> bool:
            return needle in screen_text(console(pilot))

        try:
            await until(pilot, shown, repr(needle))
        except AssertionError:
            print(f"the screen, without {needle!r}:\n{screen_text(console(pilot))}")
            raise
        assert not {"\x1b", "\x9b"} & set(screen_text(console(pilot)))


async def click_on(pilot: Pilot[None], needle: str) -> None:
    """Click the first character of `needle` where the screen shows it: the console
    must still run after (no action injected by a name)."""
    app = console(pilot)
    for y, line in enumerate(screen_text(app).splitlines()):
        if (x := line.find(needle)) >= 0:
            await pilot.click(offset=(x + 1, y))
            await pilot.pause(0.1)
            assert app.is_running, f"clicking {needle!r} ended the console"
            return
    raise AssertionError(f"{needle!r} is not on the screen")


async def hostile_data(client: ApplianceClient, tmp_path: Path) -> None:
    """A synced folder (its path holding markup) with `[/]x.txt` and a name that is not
    UTF-8 (a log line); two uploads named as markup; two keys named as markup."""
    share = tmp_path / f"{QUIT}share"
    (share / "[").mkdir(parents=True)
    (share / "[" / "]x.txt").write_text(hostile_text("x"))
    not_utf8 = bytes(share / "[") + b"/]\xff" + QUIT.encode() + b"n.txt"
    Path(os.fsdecode(not_utf8)).write_text("never read")
    await client.add_source(SourceSettings(id="hostile", path=str(share), interval_s=0))
    await client.scan_source("hostile")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for name in (f"{QUIT}q.txt", "[bold red]b.txt"):
        (uploads / name).write_text(hostile_text(name))
    await wait_job(client, (await client.upload(sorted(uploads.iterdir()))).job_id)
    for name in (f"{QUIT}k", "[/]k"):
        await client.create_key(name, "query")
    deadline = time.monotonic() + WAIT_S
    while (scan := (await client.sources())[0].last_scan) is None or scan.state == "running":
        assert time.monotonic() < deadline, "the scan never finished"
        await asyncio.sleep(0.1)
    assert len((await client.documents()).documents) == 3


@pytest.mark.slow
async def test_every_screen_shows_server_strings_as_plain_text(
    live_client: ApplianceClient, tmp_path: Path
) -> None:
    await hostile_data(live_client, tmp_path)
    local = tmp_path / "local"  # the Ingest browser's folder: names on disk are hostile too
    local.mkdir()
    (local / f"{QUIT}i.txt").write_text(hostile_text("i"))
    (local / "[bold red]bad.pdf").write_text("not a PDF at all")
    (local / "\x1b[2Jesc.bin").write_text("not uploaded: not a supported type")
    questions = tmp_path / f"{QUIT}qa.jsonl"
    questions.write_text(
        json.dumps({"question": f"[/] {QUIT} When is the generator tested?", "file": "[/]x.txt"})
    )
    app = AdminApp(live_client, interval=0.25, browse_root=local)
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        # Logs: the folder walk's line about a name that is not UTF-8 (first, at level
        # warning: in process, the console's own requests are logged too, and soon push
        # it out of the server's buffer)
        await pilot.press("7")
        assert isinstance(app.screen, LogsScreen)
        await pilot.press("l")
        await shows(pilot, f"[/]{QUIT}n.txt: its name is not UTF-8")

        # Documents: the names, a filter typed as markup, the delete question; a click
        await pilot.press("3")
        documents = app.screen
        assert isinstance(documents, DocumentsScreen)
        table = documents.query_one("#documents", DataTable)
        await until(pilot, lambda: table.row_count == 3, "three documents")
        await shows(pilot, "[/]x.txt", f"{QUIT}q.txt", "[bold red]b.txt")
        documents.query_one("#filter", Input).value = "[/]"
        await shows(pilot, "match “[/]”")
        documents.query_one("#filter", Input).value = ""
        table.move_cursor(row=table.get_row_index(_document_id(documents, "[/]x.txt")))
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await shows(pilot, "Delete [/]x.txt and its")
        await pilot.press("n")
        await click_on(pilot, f"{QUIT}q.txt")  # the cursor moves there, or its chunks open
        if isinstance(app.screen, ChunksScreen):
            await pilot.press("escape")

        # Chunks: the title and the text; a click
        table.move_cursor(row=table.get_row_index(_document_id(documents, "[/]x.txt")))
        await pilot.press("enter")
        assert isinstance(app.screen, ChunksScreen)
        await shows(pilot, "Chunks of [/]x.txt: 1 of 1", f"[/] closes nothing, {QUIT} quits")
        await shows(pilot, "[link=http://x]links[/link], [bold red]shouts.")
        await click_on(pilot, QUIT)
        await pilot.press("escape")

        # Ingest: the browser's names, each file's row, the failure list
        await pilot.press("2")
        ingest = app.screen
        assert isinstance(ingest, IngestScreen)
        await shows(pilot, f"{QUIT}i.txt", "[bold red]bad.pdf", "␛[2Jesc.bin")
        ingest.query_one("#path", Input).value = str(local)
        await pilot.press("enter", "u")

        def finished() -> bool:
            labels = [str(r.query_one(".file-label").render()) for r in ingest.query(FileRow)]
            return len(labels) == 2 and all(": done" in t or ": failed" in t for t in labels)

        await until(pilot, finished, "both files finished")
        await shows(pilot, f"{QUIT}i.txt: done", "[bold red]bad.pdf: failed")
        await shows(pilot, "FAILED [bold red]bad.pdf: ")
        await click_on(pilot, f"{QUIT}i.txt: done")

        # Ask: real citations of the hostile files; then an answer, its evidence and an
        # unsupported sentence holding markup (the tiny model does not write brackets on
        # demand, so that answer is posted as the stream's last event would be)
        await pilot.press("4")
        ask = app.screen
        assert isinstance(ask, AskScreen)
        await pilot.press(*"When is the emergency generator tested?", "enter")
        stats = ask.query_one("#stats", Static)
        await until(pilot, lambda: "first token" in str(stats.render()), "the answer's end")
        citations = ask.query_one("#citations", DataTable)
        cited = {str(citations.get_row_at(i)[1]) for i in range(citations.row_count)}
        assert cited & {"[/]x.txt", f"{QUIT}q.txt", "[bold red]b.txt", f"{QUIT}i.txt"}
        await shows(pilot, *cited)
        citations.clear()  # as a new question does
        ask.post_message(AnswerDone(markup_answer()))
        await shows(
            pilot,
            f"Tuesday [/] {QUIT}[1]␛[2J␛]0;owned␇\ufffd31m",
            f'[1] [/]x.txt: "[/] {QUIT} quits"',
        )
        await shows(pilot, 'not supported by the documents: "[link=http://x]x"')
        await shows(pilot, f"prompt top3 {QUIT}")
        await click_on(pilot, f"Tuesday [/] {QUIT}")

        # Search: hits (names and snippets), a hit's text; then an evaluation whose set,
        # question and expected file hold markup
        await pilot.press("escape", "5")
        search = app.screen
        assert isinstance(search, SearchScreen)
        await pilot.press(*"emergency generator", "enter")
        hits = search.query_one("#hits", DataTable)
        await until(pilot, lambda: hits.row_count >= 4, "the hits")
        # The cells hold the names as they are, in Text (which no widget parses as markup).
        # On screen, DataTable widens auto-sized columns to their contents only when idle,
        # which one busy run in three did not reach within WAIT_S (names cut at the header's
        # width): so the table must show each name's first characters literally, and the
        # hit's panel below shows a whole name and the whole text.
        names = [hits.get_row_at(i)[2] for i in range(hits.row_count)]
        assert all(isinstance(name, Text) for name in names)
        assert {"[/]x.txt", f"{QUIT}q.txt"} <= {name.plain for name in names}
        await shows(pilot, "[/]x", QUIT[:4])
        await shows(pilot, ".txt · chunk 0", f"[/] closes nothing, {QUIT} quits")
        await shows(pilot, "[link=http://x]links[/link]")
        await click_on(pilot, QUIT[:4])
        await pilot.press("e")
        evaluate = app.screen
        assert isinstance(evaluate, EvaluateScreen)
        evaluate.query_one("#eval-answers", Checkbox).value = False  # retrieval only
        evaluate.query_one("#eval-path", Input).value = str(questions)
        evaluate.query_one("#eval-path", Input).focus()
        await pilot.press("enter")
        status = search.query_one("#hit-text", Static)
        await until(pilot, lambda: "recall@5" in str(status.render()), "the evaluation")
        await shows(pilot, f"[/] {QUIT} When is", f"{QUIT}qa.jsonl: ")

        # Keys: the names, the revoke question, the notification
        await pilot.press("6")
        keys = app.screen
        assert isinstance(keys, KeysScreen)
        await shows(pilot, f"{QUIT}k", "[/]k")
        await click_on(pilot, f"{QUIT}k")
        key_table = keys.query_one("#keys", DataTable)
        key_id = _key_id(keys, "[/]k")
        key_table.move_cursor(row=key_table.get_row_index(key_id))
        await pilot.press("d")
        await shows(pilot, f"{key_id} ([/]k)? Its holders lose access.")
        await pilot.press("y")
        await shows(pilot, f"revoked key {key_id} ([/]k)")

        # Sources: the folder's path and its scan report
        await pilot.press("8")
        assert isinstance(app.screen, SourcesScreen)
        await shows(pilot, f"{QUIT}share", "1 new")
        await click_on(pilot, f"{QUIT}share")

        assert app.is_running


def _document_id(screen: DocumentsScreen, name: str) -> str:
    return next(d.id for d in screen.documents.values() if d.file_name == name)


def _key_id(screen: KeysScreen, name: str) -> str:
    return next(k.id for k in screen.keys.values() if k.name == name)


def markup_answer() -> DoneEvent:
    """An answer's last event whose every string holds markup (built from the wire types)."""
    citation = Citation(1, "d", "[/]x.txt", 0, 0.5, snippet=f"[/] {QUIT}")
    return DoneEvent(
        answer=f"Tuesday [/] {QUIT}[1]{ESCAPES}",
        citations=[citation],
        timings=Timings(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1, 1, 1.0),
        evidence=[Evidence("d", "[/]x.txt", 0, 0, 9, f"[/] {QUIT} quits", 0.9, 1)],
        unsupported=["[link=http://x]x"],
        grounded=0.5,
        strategy=f"top3 {QUIT}",
    )
