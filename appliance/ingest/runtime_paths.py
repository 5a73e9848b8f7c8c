"""What the Python runtime reads, so a confined process keeps it readable: prefixes,
the bundle, this package, the shared libraries mapped so far (from /proc/self/maps),
system libraries and the files the parsers read; and whether other users can read it."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

LIB_DIR_NAMES = ("lib", "lib32", "lib64", "lib-dynload", "site-packages", "dist-packages")


def _is_lib_dir(folder: Path, roots: Sequence[str]) -> bool:
    if any(folder.is_relative_to(root) for root in roots if root and root != "/"):
        return True
    name = folder.name
    return name in LIB_DIR_NAMES or name.endswith(".libs") or name.endswith("-linux-gnu")


def mapped_rules(maps_text: str, lib_roots: Sequence[str]) -> tuple[set[str], set[str]]:
    """From /proc/self/maps text: (folders, files) to keep readable. A mapped file in a
    library folder (beneath one of `lib_roots`: the prefixes, the bundle's _MEIPASS; or a
    folder named like `lib64`, `x86_64-linux-gnu`, `*.libs`) gives its folder, so a later
    dlopen of a sibling works; any other (the bundle's executable beside its data) only
    itself. Deleted files, pseudo entries ([heap], memfd:) and relative names give none."""
    folders: set[str] = set()
    files: set[str] = set()
    for line in maps_text.splitlines():
        fields = line.split(maxsplit=5)[5:]
        name = fields[0].strip() if fields else ""
        if not name.startswith("/") or name.endswith(" (deleted)"):
            continue
        path = Path(name)
        if _is_lib_dir(path.parent, lib_roots):
            folders.add(str(path.parent))
        else:
            files.add(name)
    return folders, files


def runtime_dirs() -> list[str]:
    """What the Python runtime reads: prefixes, the bundle, this package, the shared
    libraries loaded so far, system libraries, fonts, time zones, MIME tables, CPU facts."""
    import mimetypes

    import appliance

    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    paths |= {sys.executable, str(Path(sys.executable).resolve())}  # not its directory:
    # the bundle's holds more than the program (a data dir there would be readable)
    paths.add(str(Path(appliance.__file__).resolve().parent))
    if hasattr(sys, "_MEIPASS"):
        paths.add(str(sys._MEIPASS))
    roots = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    roots += [str(sys._MEIPASS)] if hasattr(sys, "_MEIPASS") else []
    try:
        with open("/proc/self/maps") as maps:
            folders, files = mapped_rules(maps.read(), roots)
        paths |= folders | files
    except OSError:
        pass
    paths |= {
        "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/usr/share",
        "/etc/ld.so.cache", "/etc/localtime", "/etc/fonts", "/dev/urandom", "/dev/random",
        "/dev/zero", "/proc/self", "/proc/cpuinfo", "/proc/meminfo",
        "/sys/devices/system/cpu", "/sys/devices/system/node", "/sys/fs/cgroup",
    }  # fmt: skip
    paths.update(map(str, mimetypes.knownfiles))  # read when a mail's attachments are named
    return sorted(p for p in paths if p and p != "/" and os.path.exists(p))


def readable_by_others(paths: list[str]) -> bool:
    """Whether a user other than the owner can reach and read each of `paths` (mode bits)."""
    for path in paths:
        parts = Path(path).resolve()
        for ancestor in [*reversed(parts.parents), parts]:
            try:
                mode = os.stat(ancestor).st_mode
            except OSError:
                return False
            needed = stat.S_IXOTH if stat.S_ISDIR(mode) else 0
            needed |= stat.S_IROTH if ancestor == parts else 0
            if mode & needed != needed:
                return False
    return True
