"""Small file helpers shared by ingestion and model preparation."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC  # a FIFO never blocks
# What another user may have planted is opened through no final symlink, never blocks
# on a FIFO and never becomes a controlling terminal; new files are new (O_EXCL).
DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def sha256_fd(fd: int) -> str:
    """Hex sha256 of the open file `fd` from its current offset, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    while block := os.read(fd, 1 << 20):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the regular file at `path` (its links followed: the caller's path
    means them). Anything else is refused unread: a FIFO would block the read forever."""
    fd = os.open(path, READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PlantedFileError(f"{path}: not a regular file")
        return sha256_fd(fd)
    finally:
        os.close(fd)


Owner = tuple[int, int]  # (uid, gid) for fchown


class PlantedFileError(OSError):
    """A name the appliance is about to write is taken by something it did not make (a
    symbolic link, another user's file, a directory), or a path to read goes through
    another user's link: refused, and left untouched. Its text is the message alone."""


class Directory:
    """A directory opened once, so that every name below is resolved inside it: a file is
    created with O_EXCL | O_NOFOLLOW (a link planted at the name is never followed), its
    mode and owner are set on the descriptor (fchmod, fchown), and it is renamed into
    place with both names relative to the directory. `follow=False` also refuses the
    directory itself being a symbolic link (a directory whose parent another user owns)."""

    def __init__(self, path: Path, *, follow: bool = False) -> None:
        self.path = path
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        try:
            self.fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise PlantedFileError(
                    f"{path}: not a directory (a symbolic link?): refusing to use it"
                ) from None
            raise

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def create(self, name: str, mode: int = 0o600) -> int:
        """A new file `name`, open for writing. A leftover regular file of this user (an
        interrupted write) is removed first; anything else there is refused, untouched."""
        try:
            found = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(found.st_mode) or found.st_uid != os.geteuid():
                raise self._planted(name, found)
            os.unlink(name, dir_fd=self.fd)  # unlink never follows a link
        flags = CREATE_NEW
        try:
            return os.open(name, flags, mode, dir_fd=self.fd)
        except FileExistsError:  # planted between the check and the open
            raise self._planted(name, None) from None

    def _planted(self, name: str, found: os.stat_result | None) -> PlantedFileError:
        what = "something" if found is None else _kind(found)
        return PlantedFileError(
            f"{self.path / name}: {what} is in the way of a file the appliance writes; "
            "refusing to write through it (left untouched: check who put it there, remove it, "
            "and retry)",
        )

    def discard(self, name: str) -> None:
        """Remove `name` if present (a link is removed, never its target)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def publish(self, fd: int, tmp: str, name: str, mode: int, owner: Owner | None) -> None:
        """Give the new file `tmp` (open as `fd`) its mode and owner, sync it, rename it
        over `name` and sync the directory: a crash leaves the old file or the new one."""
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        os.fsync(fd)
        os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        os.fsync(self.fd)

    def write_replacing(
        self, name: str, data: bytes, mode: int = 0o644, owner: Owner | None = None
    ) -> None:
        """Write `data` to `name` through a new temporary file beside it."""
        self._write_through(f".{name}.{os.getpid()}.tmp", name, lambda out: out.write(data),
                            mode, owner)  # fmt: skip

    def copy_in(
        self, name: str, source: IO[bytes], mode: int = 0o644, owner: Owner | None = None
    ) -> None:
        """Write `name` from the open file `source`, through `.NAME.part` beside it."""
        self._write_through(f".{name}.part", name,
                            lambda out: shutil.copyfileobj(source, out, 1 << 20),
                            mode, owner)  # fmt: skip

    def _write_through(
        self,
        tmp: str,
        name: str,
        write: Callable[[BinaryIO], object],
        mode: int,
        owner: Owner | None,
    ) -> None:
        fd = self.create(tmp)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                write(out)
            self.publish(fd, tmp, name, mode, owner)
        except BaseException:
            self.discard(tmp)
            raise
        finally:
            os.close(fd)


def _kind(found: os.stat_result) -> str:
    if stat.S_ISLNK(found.st_mode):
        return "a symbolic link"
    if not stat.S_ISREG(found.st_mode):
        return "a non-regular file"
    return f"a file of uid {found.st_uid}"


def open_named_file(path: Path) -> int:
    """Open, for reading, a regular file whose path a sysadmin typed. Its symbolic links
    are followed only when root or this user owns them (so, run as root, a link another
    user planted on the way is refused, like the kernel's protected_symlinks), and the
    file opened must be the one that walk found (no directory swapped in between)."""
    resolved = _resolve_trusted_links(path, {0, os.geteuid()})
    found = os.stat(resolved, follow_symlinks=False)
    fd = os.open(resolved, READ_NOFOLLOW)
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
        found.st_dev,
        found.st_ino,
    ):
        os.close(fd)
        raise PlantedFileError(f"{path}: not a regular file")
    return fd


def _resolve_trusted_links(path: Path, trusted: set[int]) -> Path:
    pending = list(reversed(Path(os.path.abspath(path)).parts[1:]))
    resolved = Path("/")
    for _hop in range(256):
        if not pending:
            return resolved
        part = pending.pop()
        if part == "..":
            resolved = resolved.parent
            continue
        candidate = resolved / part
        found = os.stat(candidate, follow_symlinks=False)
        if not stat.S_ISLNK(found.st_mode):
            resolved = candidate
            continue
        if found.st_uid not in trusted:
            raise PlantedFileError(
                f"{path}: goes through {candidate}, a symbolic link of uid {found.st_uid}: "
                "refusing to follow it as root (name the file it points to, if you trust it)",
            )
        target = Path(os.readlink(candidate))
        if target.is_absolute():
            resolved = Path("/")
        pending.extend(p for p in reversed(target.parts) if p not in ("/", "."))
    raise OSError(errno.ELOOP, f"{path}: too many symbolic links")


def write_atomic(path: Path, data: str, mode: int = 0o644) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one:
    a new temp file beside it (O_EXCL | O_NOFOLLOW), fsynced, renamed over, then the
    directory fsynced. The directory's own path is the caller's; names in it are not
    trusted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with Directory(path.parent, follow=True) as directory:
        directory.write_replacing(path.name, data.encode(), mode)


def write_private(path: Path, data: str) -> None:
    """`write_atomic` readable by the owner only (mode 0600)."""
    write_atomic(path, data, 0o600)


class DataDirBusy(Exception):
    """Another process (a running server) holds the data directory."""


LOCK_FILE = ".lock"
LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def lock_data_dir(root: Path) -> int:
    """Hold `<root>/.lock` (flock, exclusive) for the life of the process: a second
    server, or a restore, on the same data cannot start. Returns the fd to release."""
    root.mkdir(parents=True, exist_ok=True)
    with Directory(root, follow=True) as directory:  # the data dir's path is the config's
        return lock_in(directory.fd, root)


def lock_in(dir_fd: int, root: Path) -> int:
    """`lock_data_dir` for the data dir `root` already open as `dir_fd`. The service user
    owns the data dir, so `.lock` may be anything: it is opened below `dir_fd` with
    O_NOFOLLOW | O_NONBLOCK and must be a regular file with no other name (not a link to
    a file outside, created through it, nor a FIFO); anything else is refused, untouched."""
    import fcntl

    path = root / LOCK_FILE
    try:
        fd = os.open(LOCK_FILE, LOCK_FLAGS, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
        found = os.stat(LOCK_FILE, dir_fd=dir_fd, follow_symlinks=False)
        raise _planted_lock(path, _kind(found)) from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:
        os.close(fd)
        what = "a hard link to another file" if found.st_nlink != 1 else _kind(found)
        raise _planted_lock(path, what)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirBusy(f"{root} is in use by a running appliance (stop it first)") from None
    return fd


def _planted_lock(path: Path, what: str) -> PlantedFileError:
    return PlantedFileError(
        f"{path}: {what} is where the data dir's lock file belongs; refusing to open it "
        "(left untouched: check who put it there, remove it, and retry)"
    )


def unlock_data_dir(fd: int) -> None:
    os.close(fd)  # closing the descriptor releases the flock


def chown_below(dir_fd: int, owner: Owner) -> None:
    """Give everything below the open folder `dir_fd` (not the folder itself) to `owner`
    through descriptors: each name opened below its folder's descriptor with O_NOFOLLOW,
    a folder's contents before the folder (no folder is another user's while it is
    walked). Only folders and regular files are expected; anything else is refused."""
    flags = READ_NOFOLLOW
    for name in sorted(os.listdir(dir_fd)):
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise PlantedFileError(f"{name}: a symbolic link: refusing to give it away") from None
        try:
            found = os.fstat(fd)
            if stat.S_ISDIR(found.st_mode):
                chown_below(fd, owner)
            elif not stat.S_ISREG(found.st_mode):
                raise PlantedFileError(f"{name}: {_kind(found)}: refusing to give it away")
            os.fchown(fd, *owner)
        finally:
            os.close(fd)


def copy_sqlite(conn: sqlite3.Connection, target: Path) -> None:
    """A consistent copy of the database behind `conn` at `target` (SQLite's online
    backup: rows still in the WAL come along)."""
    dest = sqlite3.connect(target)
    try:
        conn.backup(dest)
    finally:
        dest.close()


SIZE_CACHE_S = 30.0


def tree_size(root: Path) -> int:
    """Bytes of the regular files under `root` (not following links)."""
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:  # vanished or unreadable: counted as empty
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


class TreeSizeCache:
    """A directory's size, walked at most every SIZE_CACHE_S (a big store has many files)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.at = -SIZE_CACHE_S
        self.size = 0
        self.lock = asyncio.Lock()

    async def get(self) -> int:
        async with self.lock:
            if time.monotonic() - self.at > SIZE_CACHE_S:
                self.size = await asyncio.to_thread(tree_size, self.root)
                self.at = time.monotonic()
            return self.size
