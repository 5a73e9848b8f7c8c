"""Backup and restore of everything the appliance holds, as one tar.gz archive.

`write_backup` runs in the live server (`POST /v1/backup`, admin): the journal and the
key table through SQLite's online backup, the vector store copied on its own thread
after a flush (no write can land halfway), the effective settings with their secrets
redacted, and a manifest with the size and SHA-256 of every archived file and of the
models. Keys travel as hashes only: the bootstrap admin key (`secrets/admin.key`) is
left out. `appliance.restore` puts an archive back (server stopped).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

import appliance
from appliance.config.paths import data_dir
from appliance.domain.errors import ApplianceError
from appliance.restore.archive import FORMAT, MANIFEST
from appliance.runtime.files import sha256_file
from appliance.store.active_index import INDEX_FILE

if TYPE_CHECKING:
    from appliance.config import Settings
    from appliance.ingest.service import IngestionService
    from appliance.models.sizing import SizingPlan
    from appliance.security.key_store import KeyStore
    from appliance.store.journal import Journal

SECRET_WORDS = frozenset(
    {"key", "secret", "secrets", "password", "passwd", "token", "credential", "credentials"}
)
REDACTED = "<redacted>"


class _Snapshot(Protocol):  # the vector store, flushed and copied on its own thread
    async def snapshot_to(self, target: Path) -> None: ...


class BackupSource(Protocol):
    """What a backup reads of the running server (the services container)."""

    settings: Settings
    plan: SizingPlan
    ingestion: IngestionService  # its `index_lock` held: no document half-ingested or deleted
    journal: Journal  # copied through SQLite's online backup
    keys: KeyStore  # the same (key hashes only)
    collection: str  # the live one, read under `ingestion.index_lock`
    embedding_path: Path  # the live collection's model

    @property
    def store(self) -> _Snapshot: ...  # an adapter, which the container alone names


def _regular_files(root: Path) -> list[Path]:
    """The regular files under `root`, never through a link (a link is left out), but the
    top folder's manifest (a store file of that name deeper down is archived and listed)."""
    return [
        p for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and str(p.relative_to(root)) != MANIFEST
    ]  # fmt: skip


def _redacted(value: Any, name: str = "") -> Any:
    """`value` with every secret-looking setting blanked: a name with one of SECRET_WORDS
    among its words (`api_key`, `qdrant_api_key`, `password`), and the user and password
    part of any URL."""
    if isinstance(value, dict):
        return {k: _redacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, name) for v in value]
    if isinstance(value, str) and value:
        if SECRET_WORDS & set(name.lower().split("_")):
            return REDACTED
        scheme, sep, rest = value.partition("://")
        if sep and "@" in rest.split("/", 1)[0]:
            return f"{scheme}://{REDACTED}@{rest.split('@', 1)[1]}"
    return value


def settings_for_backup(settings: Settings) -> bytes:
    """The effective settings, for reading: restore never uses them (the config file
    stays the truth), and secrets are redacted."""
    return json.dumps(_redacted(msgspec.to_builtins(settings)), indent=2).encode()


def _only_files_and_folders(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if not (info.isreg() or info.isdir()):
        return None  # what restore refuses is never written
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def archive_staging(staging: Path, work_dir: Path, stamp: str, header: dict[str, Any]) -> Path:
    """Write the manifest (`header`, and the SHA-256 and size of every file under
    `staging`) into `staging`, then `staging` as a tar.gz under `work_dir`."""
    import tempfile

    archived = {str(p.relative_to(staging)): p for p in _regular_files(staging)}
    manifest = {
        **header,
        "files": {name: sha256_file(p) for name, p in archived.items()},
        "sizes": {name: p.stat().st_size for name, p in archived.items()},
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    fd, name = tempfile.mkstemp(
        prefix=f"appliance-backup-{stamp}-", suffix=".tar.gz", dir=work_dir
    )  # mode 0600: it holds the documents and the key hashes
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.add(staging, arcname=".", filter=_only_files_and_folders)
    return Path(name)


async def write_backup(services: BackupSource, work_dir: Path) -> Path:
    """A consistent archive of the appliance's data, written under `work_dir`."""

    import tempfile

    settings = services.settings
    if settings.storage.qdrant_url:
        raise BackupUnsupported(
            "the store is a Qdrant server: back up its collection with Qdrant's snapshots"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"backup-{stamp}-", dir=work_dir))
    archive: Path | None = None
    try:
        root = data_dir(settings)
        # No file is half-ingested, no delete half-done and no embedding switch swapping
        # while the journal, the store and the waiting uploads are copied: they agree.
        async with services.ingestion.index_lock:
            store_dir = Path("edge") / services.collection  # the live one, read under the lock
            if settings.storage.embedded_engine == "qdrant-client":
                store_dir = Path("qdrant")
            (staging / store_dir).parent.mkdir(parents=True, exist_ok=True)
            await services.journal.backup_to(staging / "journal.sqlite3")
            await services.store.snapshot_to(staging / store_dir)
            index = root / INDEX_FILE
            if index.is_file():  # which collection and embedding model the vectors are
                shutil.copy2(index, staging / INDEX_FILE)
            uploads = root / "uploads"
            if uploads.is_dir():  # links are copied as links, then left out
                await asyncio.to_thread(
                    shutil.copytree, uploads, staging / "uploads", symlinks=True
                )
        (staging / "secrets").mkdir(mode=0o700)
        await services.keys.backup_to(staging / "secrets" / "keys.sqlite3")  # hashes only
        (staging / "settings.json").write_bytes(settings_for_backup(settings))

        def finish() -> Path:
            # the embedding model of the live collection (after a switch, not the plan's)
            files = (("chat", services.plan.chat.info.path), ("embedding", services.embedding_path))
            models = [
                {"role": role, "file": path.name, "size": path.stat().st_size,
                 "sha256": sha256_file(path)}
                for role, path in files
            ]  # fmt: skip
            header = {
                "format": FORMAT,
                "appliance": appliance.__version__,
                "created_at": time.time(),
                "store": str(store_dir),
                "models": models,
            }
            return archive_staging(staging, work_dir, stamp, header)

        archive = await asyncio.to_thread(finish)
        return archive
    except BaseException:
        if archive is not None:
            archive.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sweep(work_dir: Path) -> None:
    """Remove archives and staging left by a backup interrupted by a crash (at start)."""
    if work_dir.is_dir():
        shutil.rmtree(work_dir, ignore_errors=True)


class BackupUnsupported(ApplianceError):
    status = 409
    code = "not_supported"


class Backups:
    """Backups of the running server, one at a time, written under `work_dir`."""

    def __init__(self, source: BackupSource, work_dir: Path) -> None:
        self._source = source
        self._work_dir = work_dir
        self._lock = asyncio.Lock()

    async def make(self) -> Path:
        """A consistent archive; the caller removes it once sent."""
        async with self._lock:
            return await write_backup(self._source, self._work_dir)
