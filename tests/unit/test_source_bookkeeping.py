"""The journal keeps nothing of a removed source: a file of its job that ends after the
removal records no row, and the document it just stored is released (real SQLite)."""

from __future__ import annotations

from pathlib import Path

from appliance.store.journal import DocumentRow, Journal
from appliance.store.journal_sources import SourceFile


async def test_a_file_indexed_after_its_source_was_removed_is_released(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite3")
    j.start()
    try:
        await j.save_source("s", "{}", "api", 1.0, device=7)
        assert [r.device for r in await j.sources()] == [7]
        await j.save_source("s", "{}", "config", 2.0, device=8)  # same settings: kept
        assert [r.device for r in await j.sources()] == [7]
        await j.add(DocumentRow("d1", "x.txt", "h1", "t", 1, 1, None, 1.0, source_id="s"))
        row = SourceFile("s", "x.txt", 1, 1, "h1", "d1", 1)
        assert await j.settle_source_file(row, None) == []
        assert await j.remove_source("s") == ["d1"]
        # the job went on: its next file is stored as the source is gone
        await j.add(DocumentRow("d2", "y.txt", "h2", "t", 1, 1, None, 1.0, source_id="s"))
        late = SourceFile("s", "y.txt", 1, 1, "h2", "d2", 1)
        assert await j.settle_source_file(late, None) == ["d2"]
        assert await j.source_file_count("s") == 0
        assert sorted(await j.deleting()) == ["d1", "d2"]
    finally:
        await j.close()
