"""Walk a synced folder lazily: the files a source takes, as (relative path, size, mtime).

Directories are read one at a time with `os.scandir` (a stack of directory paths, not
of entries), so memory stays bounded on a huge share. Symlinks are never followed:
a link cannot lead the scan out of the folder. Only files whose extension the
appliance parses are returned.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from appliance.ingest.sniff import KINDS

log = logging.getLogger(__name__)


class Entry(NamedTuple):
    path: str  # relative to the folder, with '/' separators
    size: int
    mtime_ns: int


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """A pattern without '/' matches the last name; one with '/' the whole relative path."""
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(relative if "/" in p else name, p) for p in patterns)


def walk(
    root: Path, include: Sequence[str], exclude: Sequence[str], unreadable: list[str]
) -> Iterator[Entry]:
    """The files below `root` the patterns take; sub-folders that cannot be read are
    appended to `unreadable` (their files are unknown, not gone)."""
    stack = [""]
    while stack:
        relative_dir = stack.pop()
        try:
            with os.scandir(root / relative_dir if relative_dir else root) as it:
                for item in it:
                    relative = f"{relative_dir}/{item.name}" if relative_dir else item.name
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
                        log.warning("cannot stat %s: %s", relative, exc)
                        continue
                    yield Entry(relative, st.st_size, st.st_mtime_ns)
        except OSError as exc:  # an unreadable sub-folder: skipped, its files kept
            if not relative_dir:
                raise
            unreadable.append(relative_dir)
            log.warning("cannot read folder %s: %s", relative_dir, exc)


def next_batch(entries: Iterator[Entry], size: int) -> list[Entry]:
    """Up to `size` entries (run in a thread: it reads directories)."""
    return list(islice(entries, size))
