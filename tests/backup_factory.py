"""A backup archive laid out as `write_backup` makes it, from real files (a real key
table), for the restore tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from appliance.security.key_store import KeyStore


def make_keys(folder: Path) -> str:
    """A real key table under `folder` (as the server makes it); its bootstrap admin key."""

    async def start() -> None:
        store = KeyStore(folder)
        await store.start()
        await store.close()

    asyncio.run(start())
    key = (folder / "admin.key").read_text().strip()
    (folder / "admin.key").unlink()
    return key


def backup_tree(root: Path) -> str:
    """The files of a backup under `root`; the admin key its key table holds."""
    (root / "edge" / "documents").mkdir(parents=True)
    (root / "edge" / "documents" / "segment.bin").write_bytes(os.urandom(3000))
    (root / "uploads").mkdir()
    (root / "uploads" / "waiting.txt").write_text("an upload of an unfinished job")
    (root / "journal.sqlite3").write_bytes(b"the backup's journal")
    (root / "index.json").write_text('{"collection": "documents"}')
    (root / "settings.json").write_text('{"generation": {"api_key": "<redacted>"}}')
    return make_keys(root / "secrets")


def pack(root: Path, archive: Path, manifest: dict[str, Any] | None = None) -> Path:
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and str(p.relative_to(root)) != "manifest.json"
    )
    names = {str(p.relative_to(root)): p for p in files}
    manifest = manifest or {
        "format": 1,
        "files": {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in names.items()},
        "sizes": {n: p.stat().st_size for n, p in names.items()},
        "models": [{"role": "chat", "file": "chat.gguf", "size": 1, "sha256": "00"}],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname=".")
    return archive
