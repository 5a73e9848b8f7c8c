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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from appliance.config.sources import SourceSettings
from appliance.domain.errors import ApplianceError
from appliance.domain.types import ScanReport
from appliance.ingest.jobs import FileTask, Job, SourceOrigin
from appliance.ingest.pipeline import IngestionService
from appliance.ingest.source_walk import Entry, next_batch, walk
from appliance.observability.metrics import Metrics
from appliance.store.journal import Journal

log = logging.getLogger(__name__)
BATCH_PATHS = 500  # paths looked up in the journal at once
BATCH_FILES = 200  # new or changed files copied into one job
WATCH_DEBOUNCE_MS = 2000


class SourceError(ApplianceError):
    status, code = 400, "bad_source"


class SourceNotFound(ApplianceError):
    status, code = 404, "not_found"


class SourceConflict(ApplianceError):
    status, code = 409, "conflict"


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
    ) -> None:
        self._journal = journal
        self._ingestion = ingestion
        self._metrics = metrics
        self._configured = configured
        self._sources: dict[str, _Live] = {}

    async def start(self) -> None:
        """Record the configured sources, load every source, start schedules and watches."""
        now = time.time()
        for spec in self._configured:
            await self._journal.save_source(spec.id, _encode(spec), "config", now)
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

    # ---- what the API offers ----------------------------------------------
    def listing(self) -> list[tuple[SourceSettings, str, ScanReport | None]]:
        return [(s.settings, s.origin, s.last_scan) for s in self._sources.values()]

    def get(self, source_id: str) -> tuple[SourceSettings, str, ScanReport | None]:
        live = self._live(source_id)
        return live.settings, live.origin, live.last_scan

    async def add(self, spec: SourceSettings) -> None:
        if spec.id in self._sources:
            raise SourceConflict(f"`id`: a source named {spec.id!r} exists already", field="id")
        check_path(spec.path, "path")
        await self._journal.save_source(spec.id, _encode(spec), "api", time.time())
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
        async with self._ingestion.quiet:
            released = await self._journal.remove_source(source_id)
            await self._ingestion.drop_documents(released)
        return len(released)

    def scan(self, source_id: str) -> ScanReport:
        """Start a scan (or note that one runs); returns the report it will fill."""
        live = self._live(source_id)
        if live.scan_task is None or live.scan_task.done():
            live.last_scan = ScanReport(started_at=time.time())
            live.scan_task = asyncio.create_task(self._scan(live, live.last_scan))
        return live.last_scan or ScanReport()

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
        import watchfiles

        await self._scan_now(live)
        async for _changes in watchfiles.awatch(
            live.settings.path, debounce=WATCH_DEBOUNCE_MS, recursive=True
        ):
            if live.scan_task is not None and not live.scan_task.done():
                live.rescan = True
            else:
                await self._scan_now(live)

    async def _scan_now(self, live: _Live) -> None:
        self.scan(live.settings.id)
        await self.wait(live.settings.id)

    async def _scan(self, live: _Live, report: ScanReport) -> None:
        spec = live.settings
        try:
            while True:
                live.rescan = False
                await self._scan_once(spec, report)
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

    async def _scan_once(self, spec: SourceSettings, report: ScanReport) -> None:
        check_path(spec.path)
        number = await self._journal.last_scan_number(spec.id) + 1
        unreadable: list[str] = []
        entries = walk(Path(spec.path), spec.include, spec.exclude, unreadable)
        pending: list[tuple[Entry, str | None]] = []  # new or changed, and the old document
        while batch := await asyncio.to_thread(next_batch, entries, BATCH_PATHS):
            report.seen += len(batch)
            rows = await self._journal.source_files(spec.id, [e.path for e in batch])
            await self._journal.mark_seen(spec.id, list(rows), number)
            for entry in batch:
                row = rows.get(entry.path)
                if row is not None and (row.size, row.mtime_ns) == (entry.size, entry.mtime_ns):
                    report.unchanged += 1
                    continue
                if row is None:
                    report.new += 1
                else:
                    report.changed += 1
                pending.append((entry, row.document_id if row else None))
                if len(pending) >= BATCH_FILES:
                    await self._ingest(spec, pending, number, report)
                    pending = []
        if pending:
            await self._ingest(spec, pending, number, report)
        if unreadable:  # their files were not seen, but may well be there: keep them
            shown = ", ".join(unreadable[:5]) + (" …" if len(unreadable) > 5 else "")
            report.error = f"folders not readable: {shown}; no file was deleted by this scan"
            return
        while True:  # the files this scan did not see have vanished
            count, released = await self._journal.drop_unseen(spec.id, number)
            if not count:
                break
            report.deleted += count
            self._metrics.source_files.labels("deleted").inc(count)
            async with self._ingestion.quiet:
                await self._ingestion.drop_documents(released)

    async def _ingest(
        self,
        spec: SourceSettings,
        pending: list[tuple[Entry, str | None]],
        number: int,
        report: ScanReport,
    ) -> None:
        """Copy the files into a job (a snapshot), run it, wait for its end."""
        job = Job(files=[])
        job.source_id = spec.id
        target = self._ingestion.new_job_dir(job)
        root = Path(spec.path)
        for i, (entry, old_document) in enumerate(pending):
            copy = target / f"{i:05d}{Path(entry.path).suffix.lower()}"
            try:
                await asyncio.to_thread(shutil.copyfile, root / entry.path, copy)
            except OSError as exc:
                report.failed += 1
                log.warning("source %s: cannot read %s: %s", spec.id, entry.path, exc)
                continue
            origin = SourceOrigin(spec.id, entry.path, entry.size, entry.mtime_ns, number,
                                  old_document)  # fmt: skip
            job.files.append(
                FileTask(file_name=entry.path, path=copy, size_bytes=entry.size, origin=origin)
            )
        if not job.files:
            shutil.rmtree(target, ignore_errors=True)
            return
        report.job_ids.append(job.id)
        await self._ingestion.submit(job, wait_for_room=True)
        while not job.finished:
            await asyncio.sleep(0.2)
        failed = sum(1 for t in job.files if t.state.value == "failed")
        report.failed += failed
        self._metrics.source_files.labels("ingested").inc(len(job.files) - failed)


def check_path(path: str, field: str | None = None) -> None:
    """A source's folder must be an absolute path to a directory the server can read."""
    folder, name = Path(path), f"`{field}`: " if field else ""
    if not folder.is_absolute():
        raise SourceError(f"{name}{path!r} is not an absolute path", field=field)
    if not folder.is_dir():
        raise SourceError(
            f"{name}{path!r} is not a directory (or not visible to the server)", field=field
        )
    if not os.access(folder, os.R_OK | os.X_OK):
        raise SourceError(f"{name}{path!r} is not readable by the server's user", field=field)


def _encode(spec: SourceSettings) -> str:
    return msgspec.json.encode(spec).decode()
