"""Backup and restore of everything the appliance holds, as one tar.gz archive.

`write_backup` runs in the live server (`GET /v1/backup`, admin): the journal and the
key table through SQLite's online backup, the vector store copied on its own thread
after a flush (no write can land halfway), the effective settings, and a manifest
with the SHA-256 of every archived file and of the models. `restore_backup` runs
with the server stopped (`appliance restore`): it checks the archive against its
manifest, moves the current data aside, and unpacks the archive in its place.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

import appliance
from appliance.domain.errors import ApplianceError
from appliance.fileutil import sha256_file
from appliance.store.active_index import INDEX_FILE

if TYPE_CHECKING:
    from appliance.wiring import Services

MANIFEST = "manifest.json"
FORMAT = 1


def _files_under(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


async def write_backup(services: Services, work_dir: Path) -> Path:
    """A consistent archive of the appliance's data, written under `work_dir`."""

    import tempfile

    from appliance.wiring import data_dir

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
        async with services.ingestion.quiet:
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
            if uploads.is_dir():
                await asyncio.to_thread(shutil.copytree, uploads, staging / "uploads")
        (staging / "secrets").mkdir(mode=0o700)
        await services.keys.backup_to(staging / "secrets" / "keys.sqlite3")
        admin_key = root / "secrets" / "admin.key"
        if admin_key.is_file():
            shutil.copy2(admin_key, staging / "secrets" / "admin.key")
        (staging / "settings.json").write_bytes(msgspec.json.encode(settings))

        def finish() -> Path:
            # the embedding model of the live collection (after a switch, not the plan's)
            files = (("chat", services.plan.chat.info.path), ("embedding", services.embedding_path))
            models = [
                {"role": role, "file": path.name, "size": path.stat().st_size,
                 "sha256": sha256_file(path)}
                for role, path in files
            ]  # fmt: skip
            manifest = {
                "format": FORMAT,
                "appliance": appliance.__version__,
                "created_at": time.time(),
                "store": str(store_dir),
                "files": _files_under(staging),
                "models": models,
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
            fd, name = tempfile.mkstemp(
                prefix=f"appliance-backup-{stamp}-", suffix=".tar.gz", dir=work_dir
            )  # mode 0600: it holds the key hashes and the admin key
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                tar.add(staging, arcname=".")
            return Path(name)

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


class RestoreError(Exception):
    """The archive cannot be restored; the message says why."""


@dataclass(frozen=True)
class Restored:
    files: int
    moved_aside: Path | None
    model_warnings: list[str]


def restore_backup(archive: Path, data_dir: Path, model_files: dict[str, Path]) -> Restored:
    """Unpack `archive` as `data_dir` (server stopped). The previous data dir, if any,
    is kept beside it as `<data_dir>.before-restore-<time>`."""
    os.umask(0o077)  # the staging copy holds secrets too
    if not archive.is_file():
        raise RestoreError(f"{archive}: no such file")
    staging = data_dir.with_name(f".{data_dir.name}.restoring-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(staging, filter="data")  # no absolute paths, links or ..
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise RestoreError(f"{archive}: not a readable backup archive ({exc})") from exc
        manifest_path = staging / MANIFEST
        if not manifest_path.is_file():
            raise RestoreError(f"{archive}: no {MANIFEST}: not an appliance backup")
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise RestoreError(f"{archive}: backup format {manifest.get('format')} unknown")
        found = _files_under(staging)
        if found != manifest["files"]:
            bad = sorted(set(found.items()) ^ set(manifest["files"].items()))[:3]
            raise RestoreError(f"{archive}: files differ from the manifest: {bad}")
        warnings = []
        for model in manifest["models"]:
            current = model_files.get(model["role"])
            if current is None or not current.is_file():
                warnings.append(f"{model['role']} model {model['file']} is not on this machine")
            elif sha256_file(current) != model["sha256"]:
                warnings.append(
                    f"the {model['role']} model differs from the backup's ({model['file']}): "
                    "answers and search scores may differ"
                )
        (staging / "settings.json").unlink(missing_ok=True)  # the config file stays the truth
        os.chmod(staging / "secrets", 0o700)
        moved = None
        lock_only = data_dir.exists() and [p.name for p in data_dir.iterdir()] == [".lock"]
        if lock_only:
            (data_dir / ".lock").unlink()
        if data_dir.exists() and any(data_dir.iterdir()):
            stamp = time.strftime("%Y%m%d-%H%M%S")
            moved = data_dir.with_name(f"{data_dir.name}.before-restore-{stamp}")
            os.replace(data_dir, moved)
            models = moved / "models"  # the prepared default models: keep using them
            if models.is_dir() and not (staging / "models").exists():
                os.replace(models, staging / "models")
        elif data_dir.exists():
            data_dir.rmdir()
        os.replace(staging, data_dir)
        return Restored(len(found), moved, warnings)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
