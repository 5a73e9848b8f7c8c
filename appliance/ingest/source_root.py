"""A synced folder's root: opened once per scan, and never one of the appliance's own.

The admin names the folder by path (symlinks in it are the admin's and are followed);
what counts is the directory that path leads to at the moment it is opened, so its real
path is read back from the open fd and checked then, at `add` and at every scan (a
share's root can be swapped too). A folder inside the data dir (keys, journal, backups),
a config dir, `/proc`, `/sys` or `/dev` is refused; a folder that contains one of them
is walked without entering it (see `source_walk`).

`ScanRoot` holds that fd for one scan: the threads that walk and copy use it under a
lock, and it is closed only when none does (a reused fd number must never be read).
`copy_entry` snapshots a file from its own fd (`source_walk.open_file`), never by path.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from appliance.config.loader import DEFAULT_CONFIG, INSTALLED_CONFIG
from appliance.domain.errors import ApplianceError
from appliance.ingest.source_walk import Entry, open_file

T = TypeVar("T")
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class SourceError(ApplianceError):
    status, code = 400, "bad_source"


def protected_folders(data_dir: Path) -> list[str]:
    """The folders no source may be inside: the data dir, the config dirs, /proc, /sys
    and /dev (real paths)."""
    folders = [str(data_dir), str(DEFAULT_CONFIG.parent), str(INSTALLED_CONFIG.parent)]
    folders += SYSTEM_FOLDERS
    return sorted({os.path.realpath(f) for f in folders})


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip("/") + "/")


def _real_path(fd: int, path: str) -> str:
    """Where the open directory really is (from the kernel, not from the path again)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc: the path resolved now (the fd check below still holds)
        return os.path.realpath(path)


def open_root(path: str, protected: Sequence[str], field: str | None = None) -> int:
    """A directory fd of the source's folder; SourceError (400, naming `field`) if it is
    not an absolute path to a readable directory, or lies inside a protected folder."""
    name = f"`{field}`: " if field else ""
    if not os.path.isabs(path):
        raise SourceError(f"{name}{path!r} is not an absolute path", field=field)
    try:
        fd = os.open(path, ROOT_FLAGS)
    except (NotADirectoryError, FileNotFoundError):
        raise SourceError(
            f"{name}{path!r} is not a directory (or not visible to the server)", field=field
        ) from None
    except OSError as exc:
        raise SourceError(
            f"{name}{path!r} is not readable by the server's user ({exc.strerror})", field=field
        ) from None
    try:
        real, st = _real_path(fd, path), os.fstat(fd)
        inside = next((f for f in protected if _inside(real, f)), None)
        if inside is None and (st.st_dev, st.st_ino) in identities(protected):
            inside = "a protected folder (mounted here again)"
        if inside is not None:
            raise SourceError(
                f"{name}{path!r} is inside {inside}, which holds the appliance's own data "
                "or the system's: it cannot be a synced folder",
                field=field,
            )
        if not os.access(real, os.R_OK | os.X_OK):
            raise SourceError(f"{name}{path!r} is not readable by the server's user", field=field)
    except BaseException:
        os.close(fd)
        raise
    return fd


def identities(folders: Sequence[str]) -> frozenset[tuple[int, int]]:
    """(st_dev, st_ino) of the protected folders that exist: the walk does not enter them."""
    found = set()
    for folder in folders:
        try:
            st = os.stat(folder)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return frozenset(found)


def root_device(path: str, protected: Sequence[str]) -> int:
    """st_dev of the folder now (checked as `open_root` does)."""
    fd = open_root(path, protected, "path")
    try:
        return os.fstat(fd).st_dev
    finally:
        os.close(fd)


class ScanRoot:
    """The scan's directory fd of the folder, shared by the threads that walk and copy;
    closed only once none of them uses it (a reused fd number must never be read)."""

    def __init__(self, fd: int, device: int = 0) -> None:
        self.fd = fd
        self.device = device  # st_dev of the folder when it was opened
        self.entries: Iterator[Entry] = iter(())
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str, protected: Sequence[str]) -> ScanRoot:
        """The folder opened and checked as `open_root` does, with its device (a thread
        runs this: on a hung share every one of these calls may block)."""
        fd = open_root(path, protected)
        try:
            return cls(fd, os.fstat(fd).st_dev)
        except BaseException:
            os.close(fd)
            raise

    def run(self, body: Callable[[int], T]) -> T:
        with self._lock:
            if self.fd < 0:
                raise OSError(errno.EBADF, "the scan has ended")
            return body(self.fd)

    def close(self) -> None:
        with self._lock:
            close = getattr(self.entries, "close", None)
            if close is not None:
                close()  # the walk's own folder fds
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def copy_entry(root_fd: int, entry: Entry, target: Path) -> None:
    """Copy the file the walk saw, from its own fd (see `source_walk.open_file`)."""
    fd = open_file(root_fd, entry)
    with os.fdopen(fd, "rb") as source, open(target, "xb") as copy:
        shutil.copyfileobj(source, copy, 1 << 20)
