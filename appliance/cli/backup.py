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
    print(f"wrote {target} ({size / 2**20:.1f} MiB, mode 0600: it holds the documents "
          "and the key hashes; the admin key itself is not in it)")  # fmt: skip
    return 0


def restore(settings: Settings, url: str, archive: Path) -> int:
    from appliance.models.locate import ModelError
    from appliance.restore import RestoreError, restore_backup
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
