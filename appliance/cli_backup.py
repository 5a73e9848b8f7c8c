"""`appliance backup PATH` (from the running server) and `appliance restore PATH` (offline)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx

from appliance.client import ApiError, ApplianceClient
from appliance.config import Settings


def backup(url: str, key: str | None, target: Path) -> int:
    async def fetch() -> int:
        async with ApplianceClient(url, key, timeout=None) as client:
            return await client.backup(target)

    try:
        size = asyncio.run(fetch())
    except ApiError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {target} ({size / 2**20:.1f} MiB, mode 0600: it holds the "
          "key hashes and the admin key)")  # fmt: skip
    return 0


def restore(settings: Settings, url: str, archive: Path) -> int:
    from appliance.fileutil import DataDirBusy, lock_data_dir, unlock_data_dir
    from appliance.wiring import data_dir

    root = data_dir(settings)
    if not root.exists():  # no server has run on it: nothing to hold
        return _restore(settings, url, archive)
    try:  # a server holds this lock for its whole life; held here until restored
        lock = lock_data_dir(root)
    except DataDirBusy as exc:
        print(f"appliance: cannot restore: {exc}", file=sys.stderr)
        return 1
    try:
        return _restore(settings, url, archive)
    finally:
        unlock_data_dir(lock)


def _restore(settings: Settings, url: str, archive: Path) -> int:
    from appliance.backup import RestoreError, restore_backup
    from appliance.models.locate import ModelError
    from appliance.wiring import data_dir, plan_for

    try:
        httpx.get(f"{url}/healthz", timeout=2, verify=False)
    except httpx.HTTPError:
        pass
    else:
        print(f"appliance: a server answers at {url}: stop it before restoring "
              "(the embedded store belongs to it)", file=sys.stderr)  # fmt: skip
        return 1
    try:
        plan = plan_for(settings, prepare=False)
        models = {"chat": plan.chat.info.path, "embedding": plan.embedding.info.path}
    except (ModelError, ValueError, OSError):
        models = {}
    try:
        done = restore_backup(archive, data_dir(settings), models)
    except RestoreError as exc:
        print(f"appliance: cannot restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored {done.files} files into {data_dir(settings)}")
    if done.moved_aside:
        print(f"the previous data is kept in {done.moved_aside}")
    for warning in done.model_warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
