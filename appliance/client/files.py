"""The files an upload sends: what the command line and the console collect from paths."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

UPLOAD_GROUP = 20  # files per upload request


def collect_files(paths: Iterable[Path], extensions: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The files to upload: files as given, and under directories those whose name
    ends with one of `extensions`; plus a problem line for each missing path."""
    files: list[Path] = []
    problems: list[str] = []
    wanted = tuple(e.lower() for e in extensions)
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and p.name.lower().endswith(wanted)
            )  # fmt: skip
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return files, problems
