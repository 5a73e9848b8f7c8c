"""The journal's metadata filters and sync bookkeeping (real SQLite), and the folder walk."""

from __future__ import annotations

import calendar
import os
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from appliance.domain.types import DocumentFilter
from appliance.ingest.source_walk import matches, next_batch, walk
from appliance.store.journal import DocumentRow, Journal
from appliance.store.journal_sources import SourceFile

DAY = calendar.timegm(date(2026, 11, 20).timetuple())


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3")
    j.start()
    docs = [
        DocumentRow("a", "depots.xlsx", "ha", "x", 1, 1, None, DAY, "xlsx", "Depot directory",
                    "Facilities team", "2026-01-05T10:00:00Z", None, None, None, "{}"),
        DocumentRow("b", "audit.eml", "hb", "x", 1, 1, None, DAY + 86400, "eml",
                    "Quarterly depot audit", "Aino Virtanen", "2026-11-03T10:00:00+02:00",
                    None, "share", None, "{}"),
        DocumentRow("c", "notes_100%.txt", "hc", "x", 1, 1, None, DAY + 2 * 86400, "txt"),
    ]  # fmt: skip
    for d in docs:
        await j.add(d)
    yield j
    await j.close()


@pytest.mark.parametrize(
    ("f", "ids"),
    [
        (DocumentFilter(), {"a", "b", "c"}),
        (DocumentFilter(file_types=["XLSX", ".eml"]), {"a", "b"}),
        (DocumentFilter(file_types=[]), set()),
        (DocumentFilter(sources=["upload"]), {"a", "c"}),
        (DocumentFilter(sources=["share"]), {"b"}),
        (DocumentFilter(sources=["upload", "share"]), {"a", "b", "c"}),
        (DocumentFilter(title="DEPOT"), {"a", "b"}),
        (DocumentFilter(title="100%"), {"c"}),  # % is a character here, not a wildcard
        (DocumentFilter(title="_"), {"c"}),
        (DocumentFilter(author="virtanen"), {"b"}),
        (DocumentFilter(created_after=date(2026, 6, 1)), {"b"}),
        (DocumentFilter(created_before=date(2026, 1, 5)), {"a"}),  # inclusive
        (DocumentFilter(ingested_after=date(2026, 11, 21)), {"b", "c"}),
        (DocumentFilter(ingested_before=date(2026, 11, 21)), {"a", "b"}),  # the whole day
        (DocumentFilter(file_types=["xlsx"], author="virtanen"), set()),
    ],
)
async def test_filters_admit_exactly_the_matching_documents(
    journal: Journal, f: DocumentFilter, ids: set[str]
) -> None:
    assert set(await journal.matching(f)) == ids


async def test_describe_gives_what_citations_show(journal: Journal) -> None:
    info = await journal.describe(["b", "a", "missing"])
    assert set(info) == {"a", "b"}
    assert (info["b"].title, info["b"].author, info["b"].file_type, info["b"].source) == (
        "Quarterly depot audit", "Aino Virtanen", "eml", "share",
    )  # fmt: skip


async def test_a_source_document_lives_while_a_file_refers_to_it(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    j.start()
    try:
        await j.save_source("s", "{}", "api", DAY)  # a file's row needs its source
        await j.add(DocumentRow("d1", "x.txt", "h1", "t", 1, 1, None, DAY, source_id="s"))
        await j.add(DocumentRow("up", "y.txt", "h2", "t", 1, 1, None, DAY))  # an upload
        # two files of the folder with the same content share one document
        for path in ("x.txt", "copy.txt"):
            row = SourceFile("s", path, 1, 1, "h1", "d1", 1)
            assert await j.settle_source_file(row, None) == []
        # a file with the content of an upload refers to it; never deletes it
        await j.settle_source_file(SourceFile("s", "y.txt", 1, 1, "h2", "up", 1), None)
        await j.mark_seen("s", ["x.txt"], 2)  # scan 2 saw only x.txt
        count, released = await j.drop_unseen("s", 2)
        assert count == 2 and released == []  # d1 is still x.txt's; the upload is kept
        assert await j.deleting() == []
        # x.txt changed: its new document replaces d1, now referred to by nobody
        await j.add(DocumentRow("d2", "x.txt", "h3", "t", 1, 1, None, DAY, source_id="s"))
        released = await j.settle_source_file(SourceFile("s", "x.txt", 2, 2, "h3", "d2", 3), "d1")
        assert released == ["d1"] and await j.deleting() == ["d1"]
        assert await j.remove_source("s") == ["d2"]
        assert (await j.get("up")) is not None
    finally:
        await j.close()


def test_patterns_match_names_or_paths() -> None:
    assert matches("a/b/report.pdf", ["*.pdf"])
    assert matches("reports/q3.xlsx", ["reports/*.xlsx"])
    assert matches("reports/2026/q3.xlsx", ["reports/*"])  # '*' crosses folders
    assert not matches("other/q3.xlsx", ["reports/*.xlsx"])
    assert matches("a/.git", [".*"]) and matches("~$plan.docx", ["~$*"])


def test_walk_takes_supported_files_skips_hidden_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    (tmp_path / "docs" / "deep" / "a.md").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "c.exe").write_text("c")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.txt").write_text("d")
    (tmp_path / "~$e.docx").write_text("e")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    os.symlink(outside, tmp_path / "link")
    os.symlink(outside / "secret.txt", tmp_path / "linked.txt")
    unreadable: list[str] = []
    entries = walk(tmp_path, ["*"], [".*", "~$*"], unreadable)
    found = sorted(e.path for e in next_batch(entries, 100))
    assert found == ["b.txt", "docs/deep/a.md"]
    assert unreadable == []
    only_md = walk(tmp_path, ["*.md"], [], [])
    assert [e.path for e in next_batch(only_md, 100)] == ["docs/deep/a.md"]
