"""API keys in SQLite (`<data_dir>/secrets/keys.sqlite3`), cached in memory for checks.

The table is read once at start; every change is committed on the store's own thread
and then applied to the cache, so a request's check never touches the disk.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import msgspec

from appliance.runtime.files import copy_sqlite, write_private
from appliance.runtime.worker import ThreadWorker
from appliance.security.keys import KeyRecord, Role, check, key_id_of, new_key
from appliance.wire.collections import ALL_COLLECTIONS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
)
"""
# keys made before collections read every collection
_ADD_COLLECTIONS = "ALTER TABLE api_keys ADD COLUMN collections TEXT NOT NULL DEFAULT '[\"*\"]'"
_COLUMNS = "id, name, role, key_hash, created_at, revoked_at, collections"
BOOTSTRAP_NAME = "bootstrap admin"


class LastAdminKey(Exception):
    """Revoking the only active admin key would lock every admin out."""


def _record(row: tuple[object, ...]) -> KeyRecord:
    fields = dict(zip(_COLUMNS.split(", "), row, strict=True))
    fields["collections"] = msgspec.json.decode(str(fields["collections"]))
    return msgspec.convert(fields, KeyRecord)


class KeyStore:
    def __init__(self, secrets_dir: Path) -> None:
        self.secrets_dir = secrets_dir
        self._keys: dict[str, KeyRecord] = {}
        self._revoking = asyncio.Lock()  # the last-admin check and the write, together
        self._worker: ThreadWorker[sqlite3.Connection] = ThreadWorker(
            "keys", self._open, queue_size=64
        )

    def _open(self) -> sqlite3.Connection:
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.secrets_dir, 0o700)
        conn = sqlite3.connect(self.secrets_dir / "keys.sqlite3", check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_SCHEMA)
        if "collections" not in {r[1] for r in conn.execute("PRAGMA table_info(api_keys)")}:
            conn.execute(_ADD_COLLECTIONS)
        conn.commit()
        return conn

    @property
    def admin_key_file(self) -> Path:
        return self.secrets_dir / "admin.key"

    async def start(self) -> None:
        """Open the table, load it, and make the bootstrap admin key if there is none."""
        self._worker.start()
        rows = await self._worker.call(
            lambda c: c.execute(f"SELECT {_COLUMNS} FROM api_keys").fetchall()
        )
        self._keys = {r.id: r for r in map(_record, rows)}
        if not self._keys:
            key_id, key, key_hash = new_key()
            write_private(self.admin_key_file, key + "\n")  # the file first: never a lost key
            await self._insert(KeyRecord(key_id, BOOTSTRAP_NAME, Role.ADMIN, key_hash, time.time()))
            shown = (
                f"It is shown once:\n\n    {key}\n"
                if sys.stderr.isatty()
                else ("(not printed: the console is not a terminal, so it would end up in logs)\n")
            )
            print(
                f"\nFirst start: made the admin API key {key_id} and wrote it to "
                f"{self.admin_key_file} (mode 0600). {shown}",
                file=sys.stderr,
                flush=True,
            )

    async def close(self) -> None:
        self._worker.stop()

    async def backup_to(self, target: Path) -> None:
        """A consistent copy of the key table (hashes only) at `target`."""

        await self._worker.call(lambda conn: copy_sqlite(conn, target))

    def authenticate(self, key: str) -> KeyRecord | None:
        """The active key record for `key`, in constant time; None if unknown or revoked."""
        key_id = key_id_of(key)
        record = self._keys.get(key_id) if key_id else None
        return record if check(key, record) else None

    def list(self) -> list[KeyRecord]:
        return sorted(self._keys.values(), key=lambda r: (r.created_at, r.id))

    def get(self, key_id: str) -> KeyRecord | None:
        return self._keys.get(key_id)

    async def create(
        self, name: str, role: Role, collections: tuple[str, ...] = (ALL_COLLECTIONS,)
    ) -> tuple[str, KeyRecord]:
        """A new key: (the key, shown once; its record). `collections`: the ids it may
        read, or `*` for all."""
        key_id, key, key_hash = new_key()
        record = KeyRecord(key_id, name, role, key_hash, time.time(), None, collections)
        await self._insert(record)
        return key, record

    async def _insert(self, record: KeyRecord) -> None:
        def job(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                    (
                        *msgspec.structs.astuple(record)[:5], None,
                        msgspec.json.encode(list(record.collections)).decode(),
                    ),
                )  # fmt: skip

        await self._worker.call(job)
        self._keys[record.id] = record

    async def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke a key (kept in the list, marked revoked); None if unknown."""
        async with self._revoking:
            return await self._revoke(key_id)

    async def _revoke(self, key_id: str) -> KeyRecord | None:
        record = self._keys.get(key_id)
        if record is None or not record.active:
            return record
        admins = [r for r in self._keys.values() if r.active and r.role is Role.ADMIN]
        if record.role is Role.ADMIN and len(admins) == 1:
            raise LastAdminKey(
                f"key {key_id} is the last active admin key: create another admin key first"
            )
        now = time.time()

        def job(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, key_id))

        await self._worker.call(job)
        revoked = msgspec.structs.replace(record, revoked_at=now)
        self._keys[key_id] = revoked
        return revoked
