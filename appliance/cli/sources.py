"""`appliance sources list|add|scan|remove`: synced folders, through the API."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import msgspec

from appliance.cli import options
from appliance.client import ApiError, ApplianceClient
from appliance.config.sources import SourceSettings
from appliance.domain.types import ScanReport
from appliance.wire.collections import DEFAULT_COLLECTION
from appliance.wire.sources import SourceRead


def register(commands: options.Commands) -> None:
    sources = commands.add_parser("sources", help="folders kept in sync with the index")
    verbs = sources.add_subparsers(dest="sources_command", required=True)
    verbs.add_parser("list", help="the synced folders and their last scan")
    add = verbs.add_parser("add", help="sync a folder (admin)")
    add.add_argument("id", help="a name: lower-case letters, digits, - and _")
    add.add_argument("path", help="absolute path of the folder, as the server sees it")
    add.add_argument("--include", action="append", help="pattern of files to take (repeatable)")
    add.add_argument("--exclude", action="append", help="pattern of files to skip (repeatable)")
    add.add_argument("--interval", type=float, default=0.0, help="seconds between scans")
    add.add_argument("--watch", action="store_true", help="scan when files change")
    add.add_argument("--role", choices=["admin", "ingest"], default="ingest")
    options.add_collection(
        add, "the collection its documents go to (default: default)", DEFAULT_COLLECTION
    )
    scan = verbs.add_parser("scan", help="scan a folder now and wait for the report")
    scan.add_argument("id")
    scan.add_argument("--no-wait", action="store_true", help="start the scan and return")
    remove = verbs.add_parser("remove", help="stop syncing a folder, delete its documents (admin)")
    remove.add_argument("id")
    options.add_client_options(sources)
    sources.set_defaults(func=cmd_sources)


def cmd_sources(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    url, key = options.server_url(args, settings), options.api_key(args, settings)
    return sources_command(url, key, args)


def _report(report: ScanReport | None) -> str:
    if report is None:
        return "never scanned"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(report.started_at))
    text = (
        f"{report.state} {when}: {report.seen} files, {report.new} new, {report.changed} "
        f"changed, {report.unchanged} unchanged, {report.deleted} deleted, "
        f"{report.failed} failed"
    )
    return text + (f" ({report.error})" if report.error else "")


def _show(source: SourceRead) -> None:
    s = source.settings
    schedule = f"every {s.interval_s:g} s" if s.interval_s else "on demand"
    schedule += ", watched" if s.watch else ""
    print(f"{s.id}  {s.path}  [{source.origin}, role {s.role}, {schedule}]")
    print(f"    into collection {s.collection}")
    print(f"    include {', '.join(s.include)}; exclude {', '.join(s.exclude) or '-'}")
    print(f"    last scan: {_report(source.last_scan)}")


def sources_command(url: str, key: str | None, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(url, key, args))
    except ApiError as exc:
        print(f"sources {args.sources_command}: {exc}", file=sys.stderr)
        return 1
    except msgspec.ValidationError as exc:
        print(f"sources {args.sources_command}: {exc}", file=sys.stderr)
        return 2


async def _run(url: str, key: str | None, args: argparse.Namespace) -> int:
    async with ApplianceClient(url, key) as client:
        verb = args.sources_command
        if verb == "list":
            found = await client.sources()
            for source in found:
                _show(source)
            if not found:
                print("no synced folders")
        elif verb == "add":
            spec = msgspec.convert(
                {
                    "id": args.id, "path": args.path, "interval_s": args.interval,
                    "watch": args.watch, "role": args.role, "collection": args.collection,
                    **({"include": args.include} if args.include else {}),
                    **({"exclude": args.exclude} if args.exclude else {}),
                },
                SourceSettings,
            )  # fmt: skip
            _show(await client.add_source(spec))
        elif verb == "scan":
            source = await client.scan_source(args.id)
            while not args.no_wait:
                report = source.last_scan
                if report is not None and report.state != "running":
                    break
                await asyncio.sleep(1.0)
                source = next(s for s in await client.sources() if s.settings.id == args.id)
            print(f"{args.id}: {_report(source.last_scan)}")
            if source.last_scan is not None and source.last_scan.state == "failed":
                return 1
        else:
            removed = await client.remove_source(args.id)
            print(f"removed {removed.id}; {removed.documents_deleted} documents deleted")
    return 0
