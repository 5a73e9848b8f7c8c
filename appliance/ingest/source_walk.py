"""Walk a synced folder lazily: the files a source takes, as (relative path, size, mtime,
device, inode).

The folder may be changed by anyone while it is read, so nothing here goes by path:
the walk starts from a directory fd of the folder's root, opens each sub-folder from it
one name at a time (`O_NOFOLLOW | O_DIRECTORY`) and lists it with `os.scandir` on that
fd. A folder swapped for a symlink mid-walk is then an error (its files are kept, not
gone), never a way out. `open_file` opens a file the walk saw the same way and checks
it is still that file (same device and inode, a regular file): a file swapped for a
symlink, a FIFO or another file between the walk and the copy is refused.

Directories are read one at a time (a stack of relative paths, not of entries), so
memory stays bounded on a huge share. Only files whose extension the appliance parses
are returned.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Collection, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from appliance.ingest.names import display_name
from appliance.ingest.sniff import KINDS
from appliance.runtime.files import DIR_NOFOLLOW, READ_NOFOLLOW

log = logging.getLogger(__name__)


class Entry(NamedTuple):
    path: str  # relative to the folder, with '/' separators
    size: int
    mtime_ns: int
    dev: int = 0  # st_dev and st_ino as the walk saw them: the file opened must be this one
    ino: int = 0


class ChangedFile(OSError):
    """The file is no longer the one the walk saw (swapped, replaced, not regular)."""


def shown(relative: str) -> str:
    """A path of the share as logs and reports show it: each name made safe to display."""
    return "/".join(display_name(part) or "?" for part in relative.split("/"))


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """A pattern without '/' matches the last name; one with '/' the whole relative path."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative if "/" in p else name, p) for p in patterns)


def _components(relative: str) -> list[str]:
    parts = relative.split("/") if relative else []
    if any(p in ("", ".", "..") for p in parts):
        raise ChangedFile(f"not a plain relative path: {shown(relative)}")
    return parts


def open_dir(root_fd: int, relative: str) -> int:
    """A new fd of the folder `relative` below the root, every name opened without
    following a symlink."""
    fd = os.dup(root_fd)
    try:
        for name in _components(relative):
            child = os.open(name, DIR_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(root_fd: int, entry: Entry) -> int:
    """An fd of the regular file the walk saw as `entry`; ChangedFile (an OSError) if the
    path now leads to anything else. Never follows a symlink, never blocks on a FIFO."""
    folder, _, name = entry.path.rpartition("/")
    parent = open_dir(root_fd, folder)
    try:
        fd = os.open(name, READ_NOFOLLOW, dir_fd=parent)
    finally:
        os.close(parent)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (entry.dev, entry.ino):
            raise ChangedFile(f"{shown(entry.path)} changed between the walk and the copy")
    except BaseException:
        os.close(fd)
        raise
    return fd


def walk(
    root: Path | int,
    include: Sequence[str],
    exclude: Sequence[str],
    unreadable: list[str],
    skip: Collection[tuple[int, int]] = (),
) -> Iterator[Entry]:
    """The files below `root` (a path, or a directory fd the caller keeps open) the
    patterns take; sub-folders that cannot be read are appended to `unreadable` (their
    files are unknown, not gone). Folders whose (st_dev, st_ino) is in `skip` (the data
    dir, /proc…) are not entered."""
    if isinstance(root, int):
        yield from _walk_fd(root, include, exclude, unreadable, skip)
        return
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield from _walk_fd(root_fd, include, exclude, unreadable, skip)
    finally:
        os.close(root_fd)


def _walk_fd(
    root_fd: int,
    include: Sequence[str],
    exclude: Sequence[str],
    unreadable: list[str],
    skip: Collection[tuple[int, int]],
) -> Iterator[Entry]:
    stack = [""]
    while stack:
        relative_dir = stack.pop()
        try:
            fd = open_dir(root_fd, relative_dir)
        except OSError as exc:  # an unreadable sub-folder (or one swapped): files kept
            if not relative_dir:
                raise
            unreadable.append(shown(relative_dir))
            log.warning("cannot read folder %s: %s", shown(relative_dir), exc.strerror)
            continue
        try:
            st = os.fstat(fd)
            if relative_dir and (st.st_dev, st.st_ino) in skip:
                log.warning("folder %s is the appliance's own: skipped", shown(relative_dir))
                continue
            yield from _list(fd, relative_dir, include, exclude, stack)
        except OSError as exc:
            if not relative_dir:
                raise
            unreadable.append(shown(relative_dir))
            log.warning("cannot read folder %s: %s", shown(relative_dir), exc.strerror)
        finally:
            os.close(fd)


def _list(
    fd: int, relative_dir: str, include: Sequence[str], exclude: Sequence[str], stack: list[str]
) -> Iterator[Entry]:
    with os.scandir(fd) as it:  # scandir reads a duplicate of `fd`
        for item in it:
            relative = f"{relative_dir}/{item.name}" if relative_dir else item.name
            if not item.name.isprintable() and _not_utf8(item.name):
                log.warning("skipped %s: its name is not UTF-8", shown(relative))
                continue
            if matches(relative, exclude):
                continue
            try:
                if item.is_dir(follow_symlinks=False):
                    stack.append(relative)
                    continue
                if not item.is_file(follow_symlinks=False):
                    continue
                if Path(item.name).suffix.lower() not in KINDS:
                    continue
                if not matches(relative, include):
                    continue
                st = item.stat(follow_symlinks=False)
            except OSError as exc:
                log.warning("cannot stat %s: %s", shown(relative), exc.strerror)
                continue
            if stat.S_ISREG(st.st_mode):
                yield Entry(relative, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def _not_utf8(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:  # bytes the file system decoded as lone surrogates
        return True
    return False


def next_batch(entries: Iterator[Entry], size: int) -> list[Entry]:
    """Up to `size` entries (run in a thread: it reads directories)."""
    return list(islice(entries, size))
