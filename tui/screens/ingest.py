"""Ingest: pick files or directories (browser or typed path), upload into a collection
(`default` unless named), follow each file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import ClassVar

from rich.text import Text, TextType
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DirectoryTree, Input, Label, ProgressBar, Static

from appliance.client import UPLOAD_GROUP, collect_files
from appliance.client.names import collection_name
from tui.messages import JobsUpdated
from tui.screens.base import ConsoleScreen
from tui.widgets.plain import clean, plain

FINISHED = ("done", "failed", "cancelled")


def eta(done: int, total: int, started: float, now: float) -> tuple[float, str]:
    """Chunks per second so far and the time left, in words."""
    elapsed = max(1e-6, now - started)
    rate = done / elapsed
    if done >= total:
        return rate, "done"
    if rate <= 0:
        return rate, "ETA –"
    left = (total - done) / rate
    return rate, f"ETA {left:.0f} s" if left < 120 else f"ETA {left / 60:.0f} min"


class FolderTree(DirectoryTree):
    """The file browser: a name on disk (a share's, say) is text like any other, its
    control characters made visible rather than sent to the terminal."""

    def process_label(self, label: TextType) -> Text:
        return super().process_label(
            clean(label, one_line=True) if isinstance(label, str) else label
        )


class FileRow(Vertical):
    """One file's name, state and a bar of its chunks."""

    def __init__(self, key: str, name: str) -> None:
        super().__init__(id=key, classes="file-row")
        self.file_name = name

    def compose(self) -> ComposeResult:
        yield Label(plain(f"{self.file_name}: queued"), classes="file-label")
        yield ProgressBar(total=None, show_eta=False, classes="file-bar")

    def show(self, state: str, done: int, total: int, why: str | None) -> None:
        text = f"{self.file_name}: {state} {done}/{total} chunks"
        if why:
            text += f" — {why}"
        self.query_one(Label).update(plain(text))
        bar = self.query_one(ProgressBar)
        if state in ("done", "skipped"):
            bar.update(total=max(total, 1), progress=max(total, 1))
        elif total:
            bar.update(total=total, progress=done)


class IngestScreen(ConsoleScreen):
    MODE = "ingest"
    CSS_PATH = "ingest.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_highlighted", "Add highlighted"),
        Binding("u,ctrl+u", "upload", "Upload"),
        Binding("c", "cancel", "Cancel jobs"),
        Binding("x", "clear", "Clear list"),
        Binding("slash", "path", "Type a path", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.chosen: list[Path] = []
        self.job_ids: list[str] = []
        self.started = 0.0

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with Horizontal(id="ingest-body"):
            with Vertical(id="pick"):
                yield Input(placeholder="A file or directory path, Enter", id="path")
                yield Input(placeholder="Into the collection: default", id="collection")
                yield FolderTree(self.console.browse_root, id="tree")
                yield Static("Enter/a add · u upload · / path", id="pick-help")
            with Vertical(id="progress"):
                yield Static("Nothing chosen: type a path, or pick in the tree (a).", id="chosen")
                yield Static("", id="overall-label")
                overall = ProgressBar(total=None, show_eta=False, id="overall")
                overall.display = False  # until an upload starts
                yield overall
                yield VerticalScroll(id="files")
                yield Static("", id="failures")
        yield from self.compose_footer()

    # ---- choosing ---------------------------------------------------------
    def _add(self, path: Path) -> None:
        path = path.expanduser()
        if not path.exists():
            self.notify(f"{path}: no such file or directory", severity="error")
            return
        if path not in self.chosen:
            self.chosen.append(path)
        self._show_chosen()

    def _show_chosen(self) -> None:
        if not self.chosen:
            text = "Nothing chosen: type a path, or pick in the tree (a)."
        else:
            shown = "\n".join(f"  {p}{'/' if p.is_dir() else ''}" for p in self.chosen[:6])
            more = f"\n  … and {len(self.chosen) - 6} more" if len(self.chosen) > 6 else ""
            text = f"To upload (u):\n{shown}{more}"
        self.query_one("#chosen", Static).update(plain(text))  # local names: hostile too

    @on(Input.Submitted, "#path")
    def path_typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._add(Path(event.value.strip()))
            event.input.value = ""
        self.query_one(DirectoryTree).focus()  # where a, u, c and x work

    @on(Input.Submitted, "#collection")
    def collection_typed(self) -> None:
        self.query_one(DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def file_picked(self, event: DirectoryTree.FileSelected) -> None:
        self._add(event.path)

    def action_add_highlighted(self) -> None:
        node = self.query_one(DirectoryTree).cursor_node
        if node is not None and node.data is not None:
            self._add(Path(node.data.path))

    def action_path(self) -> None:
        self.query_one("#path", Input).focus()

    def action_clear(self) -> None:
        self.chosen.clear()
        self._show_chosen()

    # ---- uploading --------------------------------------------------------
    def action_upload(self) -> None:
        if not self.chosen:
            self.notify("choose files or a directory first", severity="warning")
            return
        named = self.query_one("#collection", Input).value.strip()
        try:
            collection = collection_name(named) if named else None
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        self.upload(list(self.chosen), collection)

    @work(exclusive=True, group="upload", exit_on_error=False)
    async def upload(self, chosen: list[Path], collection: str | None = None) -> None:
        status = self.console.server_status or await self.call("read status", self.client.status())
        if status is None:
            return
        files, problems = await asyncio.to_thread(
            collect_files, chosen, status.supported_extensions
        )
        for problem in problems:
            self.notify(problem, severity="error")
        if not files:
            self.notify("no file of a supported type to upload", severity="warning")
            return
        self.chosen.clear()
        self._show_chosen()
        await self.query_one("#files", VerticalScroll).remove_children()
        self.query_one("#failures", Static).update("")
        self.job_ids, self.started = [], time.monotonic()
        for start in range(0, len(files), UPLOAD_GROUP):
            group = files[start : start + UPLOAD_GROUP]
            sent = self.client.upload(group, collection)
            created = await self.call(f"upload {len(group)} files", sent)
            if created is None:
                break
            self.job_ids.append(created.job_id)
        while self.job_ids:
            if self.is_current:  # polls only while visible; the jobs go on regardless
                jobs = [
                    await self.call("follow the upload", self.client.job(j), background=True)
                    for j in self.job_ids
                ]
                known = [j for j in jobs if j is not None]
                self.post_message(JobsUpdated(known))
                if len(known) == len(jobs) and all(j.state in FINISHED for j in known):
                    return
            await asyncio.sleep(0.5 * self.console.interval)

    async def on_jobs_updated(self, message: JobsUpdated) -> None:
        files = self.query_one("#files", VerticalScroll)
        done = total = 0
        failures = []
        for job in message.jobs:
            for idx, f in enumerate(job.files):
                key = f"file-{job.id[:12]}-{idx}"
                rows = files.query(f"#{key}")
                row = rows.first(FileRow) if rows else None
                if row is None:
                    row = FileRow(key, f.file_name)
                    await files.mount(row)
                why = f.error or f.note
                row.show(f.state, f.chunks_done, f.chunks_total, why if f.state != "done" else None)
                if f.state == "failed":
                    failures.append(f"FAILED {f.file_name}: {f.error}")
            done += sum(f.chunks_done for f in job.files)
            total += sum(f.chunks_total for f in job.files)
        files_done = sum(j.files_done + j.files_failed for j in message.jobs)
        files_total = sum(j.files_total for j in message.jobs)
        rate, left = eta(done, total, self.started, time.monotonic())
        state = "finished" if all(j.state in FINISHED for j in message.jobs) else "running"
        self.query_one("#overall-label", Static).update(
            f"{state}: files {files_done}/{files_total} · chunks {done}/{total}"
            f" · {rate:.1f} chunks/s · {left}"
        )
        overall = self.query_one("#overall", ProgressBar)
        overall.display = True
        overall.update(total=max(total, 1), progress=done)
        self.query_one("#failures", Static).update(plain("\n".join(failures)))

    @work(group="cancel", exit_on_error=False)
    async def action_cancel(self) -> None:
        if not self.job_ids:
            self.notify("no upload is running", severity="warning")
            return
        for job_id in self.job_ids:
            if await self.call("cancel the job", self.client.cancel_job(job_id)) is not None:
                self.notify(f"cancelled job {job_id[:8]}")
