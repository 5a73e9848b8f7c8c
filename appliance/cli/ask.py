"""The CLI's HTTP side: `ingest` (upload + progress bar) and `ask` (streamed answer),
over the shared client (`appliance.client`), like the admin console."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from appliance.api.schemas import JobRead
from appliance.client import UPLOAD_GROUP, ApiError, ApplianceClient, collect_files
from appliance.domain.types import Citation, DoneEvent, ErrorEvent, Evidence, TokenEvent

FINISHED = ("done", "failed", "cancelled")


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def ingest(url: str, key: str | None, paths: list[Path], wait: bool) -> int:
    try:
        return asyncio.run(_ingest(url, key, paths, wait))
    except ApiError as exc:
        print(f"\nupload failed: {exc}", file=sys.stderr)
        return 1


async def _follow(client: ApplianceClient, job_id: str) -> JobRead:
    while True:
        job = await client.job(job_id)
        line = (
            f"\rjob {job_id[:8]} {job.state:<9} files "
            f"{_bar(job.files_done + job.files_failed, job.files_total)} "
            f"chunks {job.chunks_done}/{job.chunks_total}"
        )
        print(line, end="", file=sys.stderr, flush=True)
        if job.state in FINISHED:
            print(file=sys.stderr)
            return job
        await asyncio.sleep(0.5)


async def _ingest(url: str, key: str | None, paths: list[Path], wait: bool) -> int:
    failed = 0
    async with ApplianceClient(url, key, timeout=300) as client:
        extensions = (await client.status()).supported_extensions
        files, problems = collect_files(paths, extensions)
        for problem in problems:
            print(problem, file=sys.stderr)
        if not files:
            print("nothing to upload", file=sys.stderr)
            return 1
        for start in range(0, len(files), UPLOAD_GROUP):
            group = files[start : start + UPLOAD_GROUP]
            created = await client.upload(group)
            if not wait:
                print(f"job {created.job_id} queued ({len(group)} files)")
                continue
            job = await _follow(client, created.job_id)
            for f in job.files:
                if f.state == "failed":
                    failed += 1
                    print(f"  FAILED {f.file_name}: {f.error}", file=sys.stderr)
                elif f.state == "skipped":
                    print(f"  skipped {f.file_name}: {f.note}")
                else:
                    print(f"  {f.state} {f.file_name}: {f.chunks_done} chunks")
    return 1 if failed else 0


def _where(item: Citation | Evidence) -> str:
    page = f", page {item.page}" if item.page else ""
    return f"{item.file_name}{page}"


def print_evidence(done: DoneEvent) -> None:
    """The evidence sentences with file and page, then the citations and the grounded score."""
    if done.evidence:
        print("\nEvidence:")
        for e in done.evidence:
            text = " ".join(e.text.split())
            print(f'  [{e.citation}] {_where(e)}: "{text}"')
    print("\nSources:")
    for c in done.citations:
        print(f"  [{c.index}] {_where(c)} (score {c.score:.3f})")
    note = "" if done.grounded >= 0.5 else " (low: check the evidence before relying on the answer)"
    print(f"\nGrounded: {done.grounded:.2f}{note}")
    for sentence in done.unsupported:
        print(f'  not supported by the documents: "{sentence}"')


def ask(url: str, key: str | None, question: str, top_k: int | None, max_tokens: int | None) -> int:
    try:
        return asyncio.run(_ask(url, key, question, top_k, max_tokens))
    except ApiError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1


async def _ask(
    url: str, key: str | None, question: str, top_k: int | None, max_tokens: int | None
) -> int:
    async with ApplianceClient(url, key, timeout=None) as client:
        async for event in client.ask_stream(question, top_k=top_k, max_tokens=max_tokens):
            if isinstance(event, TokenEvent):
                print(event.text, end="", flush=True)
            elif isinstance(event, DoneEvent):
                print()
                print_evidence(event)
                t = event.timings
                print(
                    f"  first token {t.first_token_ms:.0f} ms, {t.tokens_per_s:.1f} tok/s",
                    file=sys.stderr,
                )
            elif isinstance(event, ErrorEvent):
                print(f"\nerror: {event.message}", file=sys.stderr)
                return 1
    return 0
