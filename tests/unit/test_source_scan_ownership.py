"""A scan owns what it opens and what it was asked: real folders, a real journal, real
threads and system calls (no model is loaded).

* a purge asked while a scan runs is refused (409), never left for a later scan to find:
  that scan, of an emptied folder, deletes nothing;
* the share is never touched from the event loop (a hung NFS share would block the API):
  not the root's fstat, not the watch's set-up walk;
* a scan cancelled while a thread opens the folder's root does not lose that fd.

`NoIngestion` is a stand-in for the ingestion service, which these scans never reach
(every file is unchanged, or nothing is deleted): any use of it fails the scan.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import appliance.ingest.source_root as source_root
import appliance.ingest.sources as sources_module
from appliance.config.sources import SourceSettings
from appliance.domain.errors import ApplianceError
from appliance.domain.types import ScanReport
from appliance.ingest.sources import SourceService
from appliance.observability.metrics import Metrics
from appliance.store.journal import DocumentRow, Journal
from appliance.store.journal_sources import SourceFile

NAMES = ("a.txt", "b.txt")


class NoIngestion:
    """Not the ingestion service: these scans must not need it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the scan used the ingestion service ({name})")


def share_with_files(tmp_path: Path) -> Path:
    share = tmp_path / "share"
    share.mkdir()
    for name in NAMES:
        (share / name).write_text(f"{name}: the night porter waters the tomatoes\n")
    return share


async def indexed(journal: Journal, share: Path, spec: SourceSettings) -> None:
    """The source, and its files as a first scan would have left them (indexed, unchanged)."""
    encoded = msgspec.json.encode(spec).decode()
    await journal.save_source(spec.id, encoded, "api", time.time(), share.stat().st_dev)
    for i, name in enumerate(NAMES):
        st = (share / name).stat()
        doc = DocumentRow(f"d{i}", name, f"h{i}", "text/plain", st.st_size, 1, None, 1.0,
                          source_id=spec.id)  # fmt: skip
        await journal.add(doc)
        row = SourceFile(spec.id, name, st.st_size, st.st_mtime_ns, f"h{i}", f"d{i}", 1)
        await journal.settle_source_file(row, None)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3")
    j.start()
    try:
        yield j
    finally:
        await j.close()


async def service(journal: Journal) -> SourceService:
    sources = SourceService(
        journal=journal,
        ingestion=NoIngestion(),
        metrics=Metrics(),
        configured=[],  # type: ignore[arg-type]
    )
    await sources.start()
    return sources


async def scanned(sources: SourceService, source_id: str) -> ScanReport:
    sources.scan(source_id)
    report = await sources.wait(source_id)
    assert report is not None
    return report


def fds_of(folder: Path) -> list[str]:
    """This process's fds open on `folder` itself."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(folder):
                found.append(fd)
        except OSError:
            continue
    return found


async def test_a_purge_asked_during_a_scan_is_refused_not_kept_for_later(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = share_with_files(tmp_path)
    await indexed(journal, share, SourceSettings(id="share", path=str(share)))
    sources = await service(journal)
    held, reached = asyncio.Event(), asyncio.Event()
    lookup = journal.source_files

    async def held_lookup(source_id: str, paths: Any) -> Any:
        reached.set()
        await held.wait()
        return await lookup(source_id, paths)

    monkeypatch.setattr(journal, "source_files", held_lookup)
    sources.scan("share")
    await reached.wait()  # the scan runs: it has read its settings and walks the folder
    with pytest.raises(ApplianceError) as refused:
        sources.scan("share", purge=True)
    assert (refused.value.status, refused.value.field) == (409, "purge")
    assert "running" in refused.value.detail
    held.set()
    report = await sources.wait("share")
    assert report is not None and (report.state, report.unchanged) == ("done", 2), report
    # later, an ordinary scan of the emptied folder (an unmounted share): nothing deleted
    for name in NAMES:
        (share / name).unlink()
    report = await scanned(sources, "share")
    assert (report.state, report.deleted) == ("done", 0), report
    assert "no file was deleted" in (report.error or ""), report
    assert await journal.source_file_count("share") == 2
    await sources.stop()


async def test_the_share_is_not_touched_from_the_event_loop(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = share_with_files(tmp_path)
    await indexed(journal, share, SourceSettings(id="share", path=str(share), watch=True))
    loop_thread = threading.get_ident()
    in_loop: list[str] = []
    fstat = os.fstat

    def watched_fstat(fd: int) -> os.stat_result:
        if threading.get_ident() == loop_thread and str(fd) in fds_of(share):
            in_loop.append(f"os.fstat({fd}) of the share's root")
        return fstat(fd)

    import watchfiles.main

    rust_notify = watchfiles.main.RustNotify
    set_up: list[bool] = []

    def watched_rust_notify(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == loop_thread:
            in_loop.append("the watch's set-up (a walk of the whole folder)")
        watcher = rust_notify(*args, **kwargs)
        set_up.append(True)  # its inotify watches are in place
        return watcher

    monkeypatch.setattr(os, "fstat", watched_fstat)
    monkeypatch.setattr(watchfiles.main, "RustNotify", watched_rust_notify)
    monkeypatch.setattr(sources_module, "WATCH_DEBOUNCE_MS", 50)
    sources = await service(journal)  # watch=True: a scan at start, then the watch
    try:
        # until the watch is set up (its thread runs on its own); 6000 x 10 ms is a hang
        # guard, as in the two loops below (each takes well under a second alone)
        for _ in range(6000):
            if set_up:
                break
            await asyncio.sleep(0.01)
        assert set_up, "the watch was never set up"
        first = await sources.wait("share")
        assert first is not None and (first.state, first.unchanged) == ("done", 2), first
        (share / "notes.unknown-kind").write_text("a change the watch sees\n")
        for _ in range(6000):  # until the change has started a scan of its own
            _, _, report = sources.get("share")
            if report is not first:
                break
            await asyncio.sleep(0.01)
        assert report is not first, "the change started no scan"
        report = await sources.wait("share")
        assert report is not None and (report.state, report.unchanged) == ("done", 2), report
    finally:
        await sources.stop()
    for _ in range(6000):  # the watch's thread is asked to stop (it looks every 50 ms)
        if not [t for t in threading.enumerate() if t.name == "source-watch"]:
            break
        await asyncio.sleep(0.01)
    assert not [t for t in threading.enumerate() if t.name == "source-watch"]
    assert in_loop == [], "; ".join(in_loop)


async def test_a_scan_cancelled_while_its_root_opens_loses_no_fd(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = share_with_files(tmp_path)
    await indexed(journal, share, SourceSettings(id="share", path=str(share)))
    sources = await service(journal)
    opening, go, opened = threading.Event(), threading.Event(), threading.Event()
    open_root = source_root.open_root

    def slow_open_root(*args: Any, **kwargs: Any) -> int:  # a share slow to answer
        opening.set()
        go.wait()
        try:
            return open_root(*args, **kwargs)
        finally:
            opened.set()

    monkeypatch.setattr(source_root, "open_root", slow_open_root)
    monkeypatch.setattr(sources_module, "open_root", slow_open_root, raising=False)
    assert fds_of(share) == []
    for _ in range(3):
        for event in (opening, go, opened):
            event.clear()
        sources.scan("share")
        await asyncio.to_thread(opening.wait)
        await sources.stop()  # the scan is cancelled while the thread opens the root
        _, _, report = sources.get("share")
        assert report is not None and report.error == "cancelled", report
        go.set()
        await asyncio.to_thread(opened.wait)
        for _ in range(500):  # the fd is closed in a thread once it is handed back
            if not fds_of(share):
                break
            await asyncio.sleep(0.01)
        assert fds_of(share) == [], "the fd the cancelled scan's thread opened was lost"
