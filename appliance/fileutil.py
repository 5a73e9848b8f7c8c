"""Small file helpers shared by ingestion and model preparation."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: str, mode: int = 0o644) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one:
    a temp file beside it, fsynced, renamed over, then the directory fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_private(path: Path, data: str) -> None:
    """`write_atomic` readable by the owner only (mode 0600)."""
    write_atomic(path, data, 0o600)


class DataDirBusy(Exception):
    """Another process (a running server) holds the data directory."""


def lock_data_dir(root: Path) -> int:
    """Hold `<root>/.lock` (flock, exclusive) for the life of the process: a second
    server, or a restore, on the same data cannot start. Returns the fd to release."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirBusy(f"{root} is in use by a running appliance (stop it first)") from None
    return fd


def unlock_data_dir(fd: int) -> None:
    os.close(fd)  # closing the descriptor releases the flock


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
