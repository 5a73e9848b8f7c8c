"""`appliance backup PATH` (from the running server) and `appliance restore PATH` (offline)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from appliance.cli import options
from appliance.client import ApiError, ApplianceClient
from appliance.config import Settings


def register(commands: options.Commands) -> None:
    backup = commands.add_parser(
        "backup", help="download a consistent backup from the server (admin)"
    )
    options.add_client_options(backup)
    backup.add_argument("path", help="archive to write (.tar.gz)")
    backup.set_defaults(func=cmd_backup)
    restore = commands.add_parser("restore", help="restore a backup into data_dir (server stopped)")
    restore.add_argument("--url", help="server URL, to check that it is stopped")
    restore.add_argument("path", help="archive made by `appliance backup`")
    restore.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    url, key = options.server_url(args, settings), options.api_key(args, settings)
    return backup(url, key, Path(args.path))


def cmd_restore(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    return restore(settings, options.server_url(args, settings), Path(args.path))


def backup(url: str, key: str | None, target: Path) -> int:
    async def fetch() -> int:
        async with ApplianceClient(url, key, timeout=None) as client:
            return await client.backup(target)

    try:
        size = asyncio.run(fetch())
    except ApiError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {target} ({size / 2**20:.1f} MiB, mode 0600: it holds the documents "
          "and the key hashes; the admin key itself is not in it)")  # fmt: skip
    return 0


async def _server_responds(url: str) -> bool:
    async with ApplianceClient(url, timeout=2, verify=False) as client:
        return await client.responds()


def restore(settings: Settings, url: str, archive: Path) -> int:
    from appliance.config.paths import data_dir
    from appliance.models.configured import plan_for
    from appliance.models.locate import ModelError
    from appliance.restore import RestoreError, restore_backup

    if asyncio.run(_server_responds(url)):
        print(f"appliance: a server answers at {url}: stop it before restoring "
              "(the embedded store belongs to it)", file=sys.stderr)  # fmt: skip
        return 1
    try:
        plan = plan_for(settings, prepare=False)
        models = {"chat": plan.chat.info.path, "embedding": plan.embedding.info.path}
    except (ModelError, ValueError, OSError):
        models = {}
    root = data_dir(settings)
    try:  # holds the data dir's lock (a server's) from the first write to the last
        done = restore_backup(archive, root, models)
    except RestoreError as exc:
        print(f"appliance: cannot restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {done.files} files into {root}")
    if done.moved_aside:
        print(f"the previous data is kept in {done.moved_aside}")
    key_file = root / "secrets" / "admin.key"
    if done.admin_key == "kept":
        print(f"{key_file}: the previous admin key, which the backup's keys accept, is kept")
    elif done.admin_key == "new":
        print(f"{key_file}: a new admin key (backups hold no key, only their hashes); "
              "every key of the backup works too")  # fmt: skip
    for warning in done.model_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
