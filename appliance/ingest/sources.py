"""Folders kept in sync with the index: scans on demand, on a schedule, or on change.

A scan walks the folder lazily (`source_walk`), a batch of paths at a time: a file
whose size and mtime match what the journal recorded costs a `stat` and nothing
more. New and changed files are copied into an ingestion job (a snapshot, at most
`BATCH_FILES` at a time, so a huge share never fills the disk or the memory) and
ingested like uploads. A changed file becomes a new document; its old one is
released only when the new one is stored (`Journal.file_indexed`), so there is no
moment without its chunks. After the walk, the files the scan did not see are
forgotten and their documents deleted. The report is kept as the source's
`last_scan`.

The share is hostile ground: the root is opened once per scan and checked then
(`source_root`), the walk and every copy go through directory fds without following a
symlink, and a copy is taken from the very file the walk saw (`source_walk.open_file`).
A scan deletes nothing when the folder is on another device than when it was added,
or holds no file where the last scan found some (an unmounted share leaves an empty
mount point): it says why in its report, and purging stays the admin's decision
(remove the source, or scan with `purge`). A purge applies only to the scan it starts:
asked while a scan runs, it is refused (409), never left for a later scan to find.

Nothing on the share is touched from the event loop (a hung NFS share blocks every
system call on it): see `source_threads`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import msgspec

from appliance.config.sources import SourceSettings
from appliance.domain.errors import ApplianceError
from appliance.domain.types import ScanReport
from appliance.ingest.jobs import FileTask, Job, SourceOrigin
from appliance.ingest.service import IngestionService
from appliance.ingest.source_root import ScanRoot, SourceError, copy_entry, identities, root_device
from appliance.ingest.source_threads import run_owned, watch_changes
from appliance.ingest.source_walk import Entry, next_batch, shown, walk
from appliance.observability.metrics import Metrics
from appliance.store.collections import CollectionRegistry
from appliance.store.journal import Journal
from appliance.wire.collections import DEFAULT_COLLECTION

log = logging.getLogger(__name__)
BATCH_PATHS = 500  # paths looked up in the journal at once
BATCH_FILES = 200  # new or changed files copied into one job
WATCH_DEBOUNCE_MS = 2000


__all__ = ["ScanRunning", "SourceConflict", "SourceError", "SourceNotFound", "SourceService"]


class SourceNotFound(ApplianceError):
    status, code = 404, "not_found"


class SourceConflict(ApplianceError):
    status, code = 409, "conflict"


class ScanRunning(SourceConflict):
    """A purge asked while a scan runs: that scan read its settings at its start."""


@dataclass
class _Live:
    settings: SourceSettings
    origin: str  # "config" | "api"
    last_scan: ScanReport | None = None
    scan_task: asyncio.Task[None] | None = None
    rescan: bool = False  # a change arrived during a scan: scan again after it
    loops: list[asyncio.Task[None]] = field(default_factory=list)


class SourceService:
    def __init__(
        self,
        *,
        journal: Journal,
        ingestion: IngestionService,
        metrics: Metrics,
        configured: list[SourceSettings],
        protected: Sequence[str] = (),
        collections: CollectionRegistry | None = None,
    ) -> None:
        """`protected`: the folders no source may be inside (`source_root.protected_folders`)."""
        self._protected = list(protected)
        self._journal = journal
        self._ingestion = ingestion
        self._metrics = metrics
        self._configured = configured
        self._collections = collections  # a source's collection is made if missing
        self._sources: dict[str, _Live] = {}

    async def start(self) -> None:
        """Record the configured sources, load every source, start schedules and watches."""
        now = time.time()
        for spec in self._configured:
            try:  # recorded unless it is recorded already for the same settings
                device: int | None = await asyncio.to_thread(
                    root_device, spec.path, self._protected
                )
            except SourceError as exc:
                log.error("source %s: %s", spec.id, exc)
                device = None
            await self._journal.save_source(spec.id, _encode(spec), "config", now, device)
        for record in await self._journal.sources():
            try:
                spec = msgspec.json.decode(record.spec, type=SourceSettings)
            except msgspec.ValidationError as exc:
                log.error("source %s: stored settings unreadable (%s): skipped", record.id, exc)
                continue
            live = _Live(spec, record.origin)
            if record.last_scan:
                live.last_scan = msgspec.json.decode(record.last_scan, type=ScanReport)
                if live.last_scan.state == "running":  # the server stopped during it
                    live.last_scan.state, live.last_scan.error = "failed", "interrupted"
            self._sources[spec.id] = live
            self._start_loops(live)

    async def stop(self) -> None:
        for live in self._sources.values():
            await self._cancel(live)

    async def _collection_id(self, spec: SourceSettings) -> str:
        if self._collections is None:
            return DEFAULT_COLLECTION
        return await self._collections.ensure(spec.collection)

    def collection_of(self, spec: SourceSettings) -> str | None:
        """The id of the collection the source fills (None: not made yet)."""
        if self._collections is None:
            return DEFAULT_COLLECTION
        row = self._collections.named(spec.collection)
        return row.id if row is not None else None

    # ---- what the API offers ----------------------------------------------
    def listing(self) -> list[tuple[SourceSettings, str, ScanReport | None]]:
        return [(s.settings, s.origin, s.last_scan) for s in self._sources.values()]

    def get(self, source_id: str) -> tuple[SourceSettings, str, ScanReport | None]:
        live = self._live(source_id)
        return live.settings, live.origin, live.last_scan

    async def add(self, spec: SourceSettings) -> None:
        if spec.id in self._sources:
            raise SourceConflict(f"`id`: a source named {spec.id!r} exists already", field="id")
        device = await asyncio.to_thread(root_device, spec.path, self._protected)
        await self._collection_id(spec)  # made now: the admin sees it at once
        await self._journal.save_source(spec.id, _encode(spec), "api", time.time(), device)
        live = _Live(spec, "api")
        self._sources[spec.id] = live
        self._start_loops(live)

    async def remove(self, source_id: str) -> int:
        """Stop syncing and delete the documents that came only from this source."""
        live = self._live(source_id)
        if live.origin == "config":
            raise SourceConflict(
                f"source {source_id!r} is defined in the config file ([[sources]]): "
                "remove it there and restart"
            )
        await self._cancel(live)
        del self._sources[source_id]
        await self._cancel_jobs(source_id)
        async with self._ingestion.index_lock:
            released = await self._journal.remove_source(source_id)
            await self._ingestion.drop_documents(released)
        return len(released)

    def scan(self, source_id: str, *, purge: bool = False) -> ScanReport:
        """Start a scan (or note that one runs); returns the report it will fill.
        `purge` (an admin's call): the folder as it is now is the truth, even on another
        device or empty: its device is recorded anew, and what the scan does not see is
        deleted. It applies to the scan it starts only: ScanRunning (409) if one runs."""
        live = self._live(source_id)
        if live.scan_task is not None and not live.scan_task.done():
            if purge:
                raise ScanRunning(
                    f"`purge`: a scan of {source_id!r} is running and purges nothing; "
                    "ask again once it has ended (GET /v1/sources shows its state)",
                    field="purge",
                )
            return live.last_scan or ScanReport()
        live.last_scan = ScanReport(started_at=time.time())
        live.scan_task = asyncio.create_task(self._scan(live, live.last_scan, purge))
        return live.last_scan

    async def wait(self, source_id: str) -> ScanReport | None:
        """The report once the running scan (if any) has ended (tests, the CLI)."""
        live = self._live(source_id)
        while live.scan_task is not None and not live.scan_task.done():
            await asyncio.shield(live.scan_task)
        return live.last_scan

    # ---- internals --------------------------------------------------------
    def _live(self, source_id: str) -> _Live:
        try:
            return self._sources[source_id]
        except KeyError:
            raise SourceNotFound(f"no source named {source_id!r}") from None

    async def _cancel(self, live: _Live) -> None:
        tasks = [*live.loops, *([live.scan_task] if live.scan_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        live.loops.clear()

    async def _cancel_jobs(self, source_id: str) -> None:
        """Cancel the ingestion jobs of a removed source and wait for their end (a file
        being stored finishes first; the journal then keeps nothing of it)."""
        for job in self._ingestion.jobs():
            if job.source_id == source_id and not job.finished:
                await self._ingestion.cancel(job.id)
                while not job.finished:
                    await asyncio.sleep(0.05)

    def _start_loops(self, live: _Live) -> None:
        if live.settings.interval_s > 0:
            live.loops.append(asyncio.create_task(self._schedule(live)))
        if live.settings.watch:
            live.loops.append(asyncio.create_task(self._watch(live)))

    async def _schedule(self, live: _Live) -> None:
        while True:
            await self._scan_now(live)
            await asyncio.sleep(live.settings.interval_s)

    async def _watch(self, live: _Live) -> None:
        await self._scan_now(live)
        changes = watch_changes(live.settings.path, WATCH_DEBOUNCE_MS)
        async with contextlib.aclosing(changes):  # its thread stops, even if cancelled here
            async for _ in changes:
                if live.scan_task is not None and not live.scan_task.done():
                    live.rescan = True
                else:
                    await self._scan_now(live)

    async def _scan_now(self, live: _Live) -> None:
        self.scan(live.settings.id)
        await self.wait(live.settings.id)

    async def _scan(self, live: _Live, report: ScanReport, purge: bool) -> None:
        spec = live.settings
        try:
            while True:
                live.rescan = False
                await self._scan_once(live, report, purge)
                purge = False  # a rescan (a change came meanwhile) is an ordinary scan
                if not live.rescan:
                    break
            report.state = "done"
            self._metrics.source_scans.labels("done").inc()
        except asyncio.CancelledError:
            report.state, report.error = "failed", "cancelled"
            raise
        except Exception as exc:  # an unreadable folder, a journal failure
            log.exception("scan of source %s failed", spec.id)
            report.state, report.error = "failed", str(exc)
            self._metrics.source_scans.labels("failed").inc()
        finally:
            report.finished_at = time.time()
            with contextlib.suppress(Exception):
                await self._journal.set_last_scan(spec.id, msgspec.json.encode(report).decode())

    async def _scan_once(self, live: _Live, report: ScanReport, purge: bool) -> None:
        spec = live.settings
        # cancelled meanwhile: the root is closed once the thread has opened it
        root = await run_owned(partial(ScanRoot.open, spec.path, self._protected), ScanRoot.close)
        try:
            await self._walk(live, root, report, purge)
        finally:  # closed in a thread that runs to its end, even if cancelled (again)
            await run_owned(root.close)

    async def _walk(self, live: _Live, root: ScanRoot, report: ScanReport, purge: bool) -> None:
        spec = live.settings
        kept = await self._device_moved(live, root.device, purge)
        number = await self._journal.last_scan_number(spec.id) + 1
        unreadable: list[str] = []
        skip = await asyncio.to_thread(identities, self._protected)
        root.entries = walk(root.fd, spec.include, spec.exclude, unreadable, skip)
        pending: list[tuple[Entry, str | None]] = []  # new or changed, and the old document
        moved = await self._journal.files_elsewhere(spec.id, await self._collection_id(spec))
        entries = root.entries
        while batch := await asyncio.to_thread(
            root.run, lambda _fd: next_batch(entries, BATCH_PATHS)
        ):
            report.seen += len(batch)
            rows = await self._journal.source_files(spec.id, [e.path for e in batch])
            await self._journal.mark_seen(spec.id, list(rows), number)
            for entry in batch:
                row = rows.get(entry.path)
                same = row is not None and (row.size, row.mtime_ns) == (entry.size, entry.mtime_ns)
                if same and entry.path not in moved:  # moved: the source's collection changed
                    report.unchanged += 1
                    continue
                if row is None:
                    report.new += 1
                else:
                    report.changed += 1
                pending.append((entry, row.document_id if row else None))
                if len(pending) >= BATCH_FILES:
                    await self._ingest(spec, root, pending, number, report)
                    pending = []
        if pending:
            await self._ingest(spec, root, pending, number, report)
        if unreadable:  # their files were not seen, but may well be there: keep them
            names = ", ".join(unreadable[:5]) + (" …" if len(unreadable) > 5 else "")
            kept = f"folders not readable: {names}"
        elif not report.seen and not purge and await self._journal.source_file_count(spec.id):
            kept = "the folder holds no file where the last scan found some (not mounted?)"
        if kept:
            report.error = f"{kept}; no file was deleted by this scan"
            log.warning("source %s: %s", spec.id, report.error)
            return
        while True:  # the files this scan did not see have vanished
            count, released = await self._journal.drop_unseen(spec.id, number)
            if not count:
                break
            report.deleted += count
            self._metrics.source_files.labels("deleted").inc(count)
            async with self._ingestion.index_lock:
                await self._ingestion.drop_documents(released)

    async def _device_moved(self, live: _Live, device: int, purge: bool) -> str | None:
        """Why this scan must delete nothing if the folder is not on the device it was
        added on (None if it is, or the admin purges: the new device is recorded)."""
        recorded = next(
            (r.device for r in await self._journal.sources() if r.id == live.settings.id), None
        )
        if recorded is None or purge:
            await self._journal.set_device(live.settings.id, device)
            return None
        if recorded == device:
            return None
        return (
            f"the folder is on another device than when it was added ({device}, was "
            f"{recorded}): a share not mounted, or moved (an admin may scan with purge)"
        )

    async def _ingest(
        self,
        spec: SourceSettings,
        root: ScanRoot,
        pending: list[tuple[Entry, str | None]],
        number: int,
        report: ScanReport,
    ) -> None:
        """Copy the files into a job (a snapshot), run it, wait for its end."""
        job = Job(files=[])
        job.source_id = spec.id
        collection = await self._collection_id(spec)
        target = self._ingestion.new_job_dir(job)
        for i, (entry, old_document) in enumerate(pending):
            copy = target / f"{i:05d}{Path(entry.path).suffix.lower()}"
            try:
                await asyncio.to_thread(root.run, lambda fd, e=entry, c=copy: copy_entry(fd, e, c))
            except OSError as exc:
                report.failed += 1
                log.warning(
                    "source %s: cannot read %s: %s", spec.id, shown(entry.path),
                    exc.strerror or exc,
                )  # fmt: skip
                continue
            origin = SourceOrigin(spec.id, entry.path, entry.size, entry.mtime_ns, number,
                                  old_document)  # fmt: skip
            task = FileTask(shown(entry.path), copy, entry.size, origin=origin)
            task.collection = collection
            job.files.append(task)
        if not job.files:
            await asyncio.to_thread(shutil.rmtree, target, ignore_errors=True)
            return
        report.job_ids.append(job.id)
        await self._ingestion.submit(job, wait_for_room=True)
        while not job.finished:
            await asyncio.sleep(0.2)
        failed = sum(1 for t in job.files if t.state.value == "failed")
        report.failed += failed
        self._metrics.source_files.labels("ingested").inc(len(job.files) - failed)


def _encode(spec: SourceSettings) -> str:
    return msgspec.json.encode(spec).decode()
