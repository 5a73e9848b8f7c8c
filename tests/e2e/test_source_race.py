"""A synced folder is hostile ground: the real services (real models, real Qdrant Edge, real
journal, real parser sandbox) scanning real folders that change under them.

* a file swapped for a symlink to the admin key in a tight loop during 20 scans: the
  key never reaches a chunk; a source inside the data dir (or whose root is swapped
  for a path into it) is refused naming `path`;
* an emptied folder, or one on another device than at `add`, deletes nothing;
* removing a source while its job runs leaves none of its documents;
* file names that reach logs and documents are shown without control characters.

The services are built without the HTTP server (`build_services`), so each test costs
a model load of the tiny default models and a few small files."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from appliance.config.paths import admin_key_file
from appliance.config.schema import Settings
from appliance.config.sources import SourceSettings
from appliance.domain.errors import ApplianceError
from appliance.domain.types import ScanReport
from appliance.ingest.sources import SourceService
from appliance.server.build import build_services
from appliance.server.services import Services

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXT = "The greenhouse tomatoes are watered at dawn by the night porter."


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Services]:
    services = await build_services(settings)
    try:
        yield services
    finally:
        await services.close()


def sources_of(services: Services) -> SourceService:
    assert services.sources is not None
    return services.sources


async def scan(services: Services, source_id: str, **kw: Any) -> ScanReport:
    sources = sources_of(services)
    sources.scan(source_id, **kw)
    report = await sources.wait(source_id)
    assert report is not None
    return report


def chunk_texts(data_dir: Path) -> list[str]:
    """Every chunk text the journal holds (what search, ask and /chunks serve)."""
    conn = sqlite3.connect(f"file:{data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT text FROM chunks")]
    finally:
        conn.close()


def documents_of(data_dir: Path, source_id: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT id, file_name FROM documents WHERE source_id = ?", (source_id,)
        ).fetchall()
    finally:
        conn.close()


def swapper(share: Path, secret: Path, stop: threading.Event) -> Callable[[], None]:
    """`notes.txt` is, in turn, a symlink to `secret` and a fresh regular file (each
    os.replace is atomic; the hidden names are excluded from the scan)."""

    def run() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            link, real = share / ".swap-link", share / ".swap-real"
            link.unlink(missing_ok=True)
            os.symlink(secret, link)
            os.replace(link, share / "notes.txt")
            real.write_text(f"Garden notes, version {n}: {TEXT}\n")
            os.replace(real, share / "notes.txt")

    return run


async def test_a_file_swapped_for_a_symlink_never_leaks_the_key(
    settings_for: Any, tmp_path: Path
) -> None:
    settings = settings_for()
    share = tmp_path / "share"
    share.mkdir()
    (share / "notes.txt").write_text(TEXT + "\n")
    async with running(settings) as services:
        secret = admin_key_file(settings)
        key = secret.read_text().strip()
        assert key
        await sources_of(services).add(SourceSettings(id="garden", path=str(share)))
        stop = threading.Event()
        thread = threading.Thread(target=swapper(share, secret, stop), daemon=True)
        thread.start()
        attempts, leaks = 0, []
        try:
            for _ in range(20):
                report = await scan(services, "garden")
                assert report.state == "done", report
                attempts += report.new + report.changed
                leaks += [t for t in chunk_texts(services.data_dir) if key in t]
        finally:
            stop.set()
            thread.join()
        assert attempts, "the scans never tried to copy notes.txt: the race was not run"
        assert leaks == [], f"the admin key was indexed: {leaks[:1]}"


async def test_the_appliances_own_folders_are_refused(settings_for: Any, tmp_path: Path) -> None:
    settings = settings_for()
    share = tmp_path / "share"
    share.mkdir()
    (share / "a.txt").write_text(TEXT + "\n")
    root = tmp_path / "root-link"  # the path the admin gives: a symlink, swapped later
    root.symlink_to(share)
    async with running(settings) as services:
        sources = sources_of(services)
        secrets = admin_key_file(settings).parent
        (tmp_path / "to-secrets").symlink_to(secrets)
        for path in (secrets, services.data_dir, tmp_path / "to-secrets", Path("/proc/self")):
            with pytest.raises(ApplianceError) as refused:
                await sources.add(SourceSettings(id="bad", path=str(path)))
            assert (refused.value.status, refused.value.field) == (400, "path")
            assert "`path`" in refused.value.detail
        # a share's root swapped for a way into the data dir after `add`: refused at scan
        await sources.add(SourceSettings(id="share", path=str(root)))
        assert (await scan(services, "share")).new == 1
        root.unlink()
        root.symlink_to(secrets)
        report = await scan(services, "share")
        assert report.state == "failed" and "inside" in (report.error or ""), report
        key = admin_key_file(settings).read_text().strip()
        assert not [t for t in chunk_texts(services.data_dir) if key in t]
        assert len(documents_of(services.data_dir, "share")) == 1  # nothing deleted


async def test_an_emptied_or_moved_folder_deletes_nothing(
    settings_for: Any, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (share / name).write_text(f"{name}: {TEXT}\n")
    async with running(settings_for()) as services:
        await sources_of(services).add(SourceSettings(id="share", path=str(share)))
        assert (await scan(services, "share")).new == 3
        # an unmounted share leaves an empty mount point
        away = tmp_path / "away"
        share.rename(away)
        share.mkdir()
        report = await scan(services, "share")
        assert (report.state, report.deleted) == ("done", 0), report
        assert "no file was deleted" in (report.error or "")
        assert len(documents_of(services.data_dir, "share")) == 3
        share.rmdir()
        away.rename(share)
        # the folder on another device than at `add` (as after a remount elsewhere: the
        # recorded device is set apart from the folder's real one)
        device = share.stat().st_dev
        await services.journal.set_device("share", device + 1)
        (share / "c.txt").unlink()
        report = await scan(services, "share")
        assert (report.state, report.deleted) == ("done", 0), report
        assert "another device" in (report.error or ""), report
        assert len(documents_of(services.data_dir, "share")) == 3
        # the admin says it moved for good: the new device is recorded, c.txt is gone
        report = await scan(services, "share", purge=True)
        assert (report.state, report.deleted, report.error) == ("done", 1, None), report
        assert len(documents_of(services.data_dir, "share")) == 2
        assert (await scan(services, "share")).error is None
        # emptied on purpose: only the admin's purge deletes everything
        for name in ("a.txt", "b.txt"):
            (share / name).unlink()
        assert (await scan(services, "share")).deleted == 0
        assert (await scan(services, "share", purge=True)).deleted == 2
        assert documents_of(services.data_dir, "share") == []


async def test_removing_a_source_while_its_job_runs_leaves_nothing(
    settings_for: Any, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    for i in range(12):
        (share / f"note-{i:02d}.txt").write_text(f"Note {i}. " + TEXT * (4 + i) + "\n")
    async with running(settings_for()) as services:
        sources = sources_of(services)
        await sources.add(SourceSettings(id="share", path=str(share)))
        sources.scan("share")
        # until the job has stored a file or two, and goes on; 30000 x 10 ms: a hang guard
        for _ in range(30000):
            jobs = [j for j in services.ingestion.jobs() if j.source_id == "share"]
            if jobs and sum(t.state.value == "done" for t in jobs[0].files) >= 1:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the scan's job never stored a file")
        await sources.remove("share")
        # the job may have run on: wait for its end either way (a hang guard, as above)
        for _ in range(30000):
            if all(j.finished for j in services.ingestion.jobs()):
                break
            await asyncio.sleep(0.01)
        assert documents_of(services.data_dir, "share") == []
        left = await services.journal.document_ids()
        stored = {d for d, n in (await services.store.document_counts()).items() if n}
        assert not stored - left, "points of a removed source's documents stayed"
        assert left == set(), "documents of a removed source stayed indexed"


async def test_synced_file_names_are_shown_without_control_characters(
    settings_for: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    evil = "bad\x1b[2J\nname.txt"
    vanishing = "gone\x1b]0;pwned\x07\r.txt"
    (share / evil).write_text(TEXT + "\n")
    (share / vanishing).write_text("soon a folder\n")
    async with running(settings_for()) as services:
        await sources_of(services).add(SourceSettings(id="share", path=str(share)))
        journal_lookup = services.journal.source_files

        async def lookup_then_swap(source_id: str, paths: Any) -> Any:
            # between the walk and the copy, one file becomes a folder: it cannot be read
            if (share / vanishing).is_file():
                (share / vanishing).unlink()
                (share / vanishing).mkdir()
            return await journal_lookup(source_id, paths)

        monkeypatch.setattr(services.journal, "source_files", lookup_then_swap)
        report = await scan(services, "share")
        assert (report.new, report.failed) == (2, 1), report
        [(_, name)] = documents_of(services.data_dir, "share")
        assert name == "bad[2Jname.txt"
        lines = [line.message for line in services.logs.since(0)]
        assert any("gone]0;pwned.txt" in m for m in lines), lines
        assert not [m for m in lines if any(c in m for c in "\x1b\x07\r")], lines
