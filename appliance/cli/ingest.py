"""`appliance ingest PATH...`: upload files or directories (into `--collection`) and
follow each job with a progress bar, over the shared client (`appliance.client`), like
the admin console."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from appliance.cli import options
from appliance.client import UPLOAD_GROUP, ApiError, ApplianceClient, collect_files
from appliance.wire.jobs import JobRead

FINISHED = ("done", "failed", "cancelled")


def register(commands: options.Commands) -> None:
    p = commands.add_parser("ingest", help="upload files or directories")
    options.add_client_options(p)
    p.add_argument("paths", nargs="+", help="files or directories")
    p.add_argument("--no-wait", dest="wait", action="store_false", help="do not follow the job")
    options.add_collection(p, "the collection the documents go to (default: default)", None)
    options.client_command(p, ingest, timeout=300)


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


async def ingest(client: ApplianceClient, args: argparse.Namespace) -> int:
    """Upload `args.paths` into `args.collection` (the server's default when None); the
    exit status."""
    paths = [Path(p) for p in args.paths]
    try:
        return await _ingest(client, paths, args.wait, args.collection)
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


async def _ingest(
    client: ApplianceClient, paths: list[Path], wait: bool, collection: str | None
) -> int:
    failed = 0
    extensions = (await client.status()).supported_extensions
    files, problems = collect_files(paths, extensions)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not files:
        print("nothing to upload", file=sys.stderr)
        return 1
    for start in range(0, len(files), UPLOAD_GROUP):
        group = files[start : start + UPLOAD_GROUP]
        created = await client.upload(group, collection)
        if not wait:
            print(f"job {created.job_id} queued ({len(group)} files)")
            continue
        job = await _follow(client, created.job_id)
        print(f"into collection {job.collection}:")
        for f in job.files:
            if f.state == "failed":
                failed += 1
                print(f"  FAILED {f.file_name}: {f.error}", file=sys.stderr)
            elif f.state == "skipped":
                print(f"  skipped {f.file_name}: {f.note}")
            else:
                print(f"  {f.state} {f.file_name}: {f.chunks_done} chunks")
    return 1 if failed else 0
