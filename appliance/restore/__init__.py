"""`appliance restore PATH`: put a backup archive in place of the data dir (server stopped).

The archive is checked member by member before anything is written (archive.py), then
unpacked into a fresh folder beside the data dir. The data dir itself is never moved:
its `.lock` (the flock a server holds for its whole life) is held from before the
unpacking until the restored files are in, so a server that starts meanwhile is refused
(systemd restarts it) and only ever opens the restored data. The previous files are
moved into `<data_dir>.before-restore-<time>-<random>` beside it; `models/` stays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.restore.admin_key import previous_admin_key, provide_admin_key
from appliance.restore.archive import (
    READ_ERRORS,
    BoundedGzip,
    CheckedArchive,
    Manifest,
    Owner,
    RestoreError,
    check_archive,
    extract,
    shown,
)
from appliance.runtime.files import (
    DIR_NOFOLLOW,
    LOCK_FILE,
    DataDirBusy,
    PlantedFileError,
    chown_below,
    lock_in,
    open_named_file,
    sha256_fd,
    unlock_data_dir,
)

__all__ = ["RestoreError", "Restored", "restore_backup"]

STAYS = frozenset({LOCK_FILE, "models"})  # the lock, and the prepared default models


@dataclass(frozen=True)
class Restored:
    files: int
    moved_aside: Path | None
    model_warnings: list[str]
    admin_key: str  # 'kept' (the previous one), 'new', or 'archive' (an older archive's)


def _digest(path: Path) -> str:
    """The model file's SHA-256. The models folder is the service user's: as root, its
    links are not followed, and a FIFO or anything else not a regular file is refused
    (PlantedFileError) without blocking on it."""
    fd = open_named_file(path)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def model_warnings(manifest: Manifest, model_files: dict[str, Path]) -> list[str]:
    warnings = []
    for model in manifest.models:
        current = model_files.get(model.role)
        try:
            digest = None if current is None else _digest(current)
        except FileNotFoundError:
            digest = None
        except PlantedFileError as exc:
            warnings.append(f"the {shown(model.role)} model is not checked: {shown(str(exc))}")
            continue
        except OSError:  # unreadable here: the server will say why
            digest = ""
        if digest is None:
            warnings.append(f"{shown(model.role)} model {shown(model.file)} is not on this machine")
        elif digest != model.sha256:
            warnings.append(
                f"the {shown(model.role)} model differs from the backup's ({shown(model.file)}): "
                "answers and search scores may differ"
            )
    return warnings


def _open_archive(archive: Path, stack: contextlib.ExitStack) -> tarfile.TarFile:
    """The archive a sysadmin named (as root: through no other user's link)."""
    try:
        raw = stack.enter_context(os.fdopen(open_named_file(archive), "rb"))
    except FileNotFoundError:
        raise RestoreError(f"{archive}: no such file") from None
    except OSError as exc:
        raise RestoreError(f"{archive}: {exc.strerror or exc}") from None
    try:
        stream = stack.enter_context(BoundedGzip(fileobj=raw, mode="rb"))
        return stack.enter_context(tarfile.open(fileobj=stream, mode="r:"))
    except READ_ERRORS as exc:
        raise RestoreError(f"{archive}: not a readable backup archive ({exc})") from exc


def restore_backup(archive: Path, data_dir: Path, model_files: dict[str, Path]) -> Restored:
    """Put `archive` in place of `data_dir`'s contents; the previous ones are kept beside it."""
    umask = os.umask(0o077)
    try:
        with contextlib.ExitStack() as stack:
            tar = _open_archive(archive, stack)
            checked = check_archive(tar, str(archive))  # nothing is written before this
            warnings = model_warnings(checked.manifest, model_files)
            created = not data_dir.exists()
            data_fd = _open_data_dir(data_dir)
            stack.callback(os.close, data_fd)
            try:  # a server holds this lock for its whole life
                lock = lock_in(data_fd, data_dir)
            except (DataDirBusy, PlantedFileError) as exc:
                raise RestoreError(str(exc)) from None
            except OSError as exc:
                raise RestoreError(f"{data_dir}: cannot lock it ({exc})") from None
            try:
                try:
                    moved, admin_key = _restore_locked(tar, checked, data_dir, data_fd, lock)
                except OSError as exc:  # (the archive's own faults name their member)
                    raise RestoreError(f"{data_dir}: cannot restore into it ({exc})") from exc
            except BaseException:
                if created:  # leave no trace of a refused restore
                    with contextlib.suppress(OSError):
                        os.unlink(LOCK_FILE, dir_fd=data_fd)
                        data_dir.rmdir()
                raise
            finally:
                unlock_data_dir(lock)
    finally:
        os.umask(umask)
    return Restored(len(checked.manifest.files), moved, warnings, admin_key)


def _open_data_dir(data_dir: Path) -> int:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        return os.open(data_dir, DIR_NOFOLLOW)
    except OSError as exc:
        raise RestoreError(f"{data_dir}: cannot open it ({exc.strerror or exc})") from None


def _give_lock(lock: int, data_dir: Path, owner: Owner) -> None:
    """The lock file (made here by root when no server had run) is the server's: given
    only when it is what `lock_in` checked, a regular file with no other name, and
    root's or the data dir owner's already."""
    found = os.fstat(lock)
    if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1 or found.st_uid not in (0, owner[0]):
        raise RestoreError(f"{data_dir / LOCK_FILE}: not the lock file it was: refusing to give it")
    os.fchown(lock, *owner)


def _restore_locked(
    tar: tarfile.TarFile, checked: CheckedArchive, data_dir: Path, data_fd: int, lock: int
) -> tuple[Path | None, str]:
    found = os.fstat(data_fd)
    owner: Owner | None = (found.st_uid, found.st_gid) if os.geteuid() == 0 else None
    if owner is not None:
        _give_lock(lock, data_dir, owner)
    free = shutil.disk_usage(data_dir.parent).free
    if checked.total_bytes > free:
        raise RestoreError(
            f"the archive unpacks to {checked.total_bytes >> 20} MiB, and "
            f"{data_dir.parent} has {free >> 20} MiB free"
        )
    # root's alone (0700) until the admin key is in: nothing in it is another user's
    # while it is written by name; then given away through descriptors, just before the swap
    staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restoring-", dir=data_dir.parent))
    try:
        staging_fd = os.open(staging, DIR_NOFOLLOW)
        try:
            extract(tar, checked, staging_fd, None)
            with contextlib.suppress(FileNotFoundError):  # the config file stays the truth
                os.unlink("settings.json", dir_fd=staging_fd)
            admin_key = provide_admin_key(staging, previous_admin_key(data_fd))
            if owner is not None:
                chown_below(staging_fd, owner)
            os.sync()  # the restored files are on disk before they replace the old ones
            return _swap(data_dir, data_fd, staging_fd, owner), admin_key
        finally:
            os.close(staging_fd)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(data_dir: Path, data_fd: int, staging_fd: int, owner: Owner | None) -> Path | None:
    """Move the data dir's files aside and the staged ones in; the data dir and its
    `.lock` stay where they are. A failure moves everything back."""
    old = sorted(set(os.listdir(data_fd)) - STAYS)
    moved: Path | None = None
    aside_fd = -1
    done: list[tuple[int, int, str]] = []
    try:
        if old:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            moved = Path(
                tempfile.mkdtemp(
                    prefix=f"{data_dir.name}.before-restore-{stamp}-", dir=data_dir.parent
                )
            )
            aside_fd = os.open(moved, DIR_NOFOLLOW)
            if owner is not None:
                os.fchown(aside_fd, *owner)
            for name in old:
                os.rename(name, name, src_dir_fd=data_fd, dst_dir_fd=aside_fd)
                done.append((data_fd, aside_fd, name))
        for name in sorted(os.listdir(staging_fd)):
            os.rename(name, name, src_dir_fd=staging_fd, dst_dir_fd=data_fd)
            done.append((staging_fd, data_fd, name))
        os.fsync(data_fd)
        if aside_fd >= 0:
            os.fsync(aside_fd)
        return moved
    except BaseException:
        for source, target, name in reversed(done):
            with contextlib.suppress(OSError):
                os.rename(name, name, src_dir_fd=target, dst_dir_fd=source)
        if moved is not None:
            with contextlib.suppress(OSError):
                moved.rmdir()
        raise
    finally:
        if aside_fd >= 0:
            os.close(aside_fd)
