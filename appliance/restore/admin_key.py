"""The bootstrap admin key after a restore. Backups leave `secrets/admin.key` out (they
hold only key hashes), so the restored data gets, in `secrets/admin.key`:

- the previous data's admin key, when it is an active admin key of the restored key
  table (a restore on the same machine: the local CLI and console keep working);
- else a new admin key, added to the restored table as "admin made by restore"
  (a restore on a new machine: every key of the backup still works as well).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time
from pathlib import Path

from appliance.restore.archive import RestoreError
from appliance.runtime.files import CREATE_NEW, READ_NOFOLLOW
from appliance.security.key_store import KeyStore
from appliance.security.keys import Role

KEY_FILE = "admin.key"


def previous_admin_key(data_fd: int) -> str | None:
    """`secrets/admin.key` of the data dir open as `data_fd`, read without following links."""
    flags = READ_NOFOLLOW
    try:
        secrets = os.open("secrets", flags | os.O_DIRECTORY, dir_fd=data_fd)
    except OSError:
        return None
    try:
        fd = os.open(KEY_FILE, flags, dir_fd=secrets)
    except OSError:
        return None
    finally:
        os.close(secrets)
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return source.read(4096).decode("utf-8", "replace").strip() or None


async def _admin_key_for(secrets: Path, previous: str | None) -> tuple[str | None, bool]:
    """(the key to write, or None when the store wrote one itself; whether it is `previous`)."""
    store = KeyStore(secrets)
    await store.start()  # an empty table gets a bootstrap key, written to admin.key
    try:
        if (secrets / KEY_FILE).exists():
            return None, False
        record = store.authenticate(previous) if previous else None
        if record is not None and record.role is Role.ADMIN:
            return previous, True
        stamp = time.strftime("%Y-%m-%d %H:%M")
        key, _ = await store.create(f"admin made by restore {stamp}", Role.ADMIN)
        return key, False
    finally:
        await store.close()


def provide_admin_key(staging: Path, previous: str | None) -> str:
    """Write `secrets/admin.key` under `staging`: 'archive' (an older archive carries it),
    'kept' (the previous data's) or 'new'. `staging` is root's alone while this runs (its
    paths are followed by name); the caller gives the tree to the service user after."""
    secrets = staging / "secrets"
    if (secrets / KEY_FILE).exists():
        return "archive"
    try:
        key, kept = asyncio.run(_admin_key_for(secrets, previous))
    except sqlite3.Error as exc:
        raise RestoreError(f"secrets/keys.sqlite3: not a key table ({exc})") from None
    if key is not None:
        flags = CREATE_NEW
        with os.fdopen(os.open(secrets / KEY_FILE, flags, 0o600), "w") as out:
            out.write(key + "\n")
    return "kept" if kept else "new"
