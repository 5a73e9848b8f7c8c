"""Receiving an upload: each file fsynced under a server-made name, then sniffed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO

from appliance.domain.errors import ApplianceError
from appliance.ingest.sniff import HEAD_BYTES, Refused, sniff


class UnsupportedFile(ApplianceError):
    """Every file of the upload is of a type we do not parse, or not what its name says."""

    status = 415
    code = "unsupported_file"


def save_upload(source: IO[bytes], target: Path) -> int:
    """Copy `source` to `target` and fsync it; returns its size."""
    source.seek(0)
    with target.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())  # on disk before the journal says it was received
    return target.stat().st_size


def refusal(path: Path, name: str) -> str | None:
    """Why the file is refused, or None when it looks like what its name says."""
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    try:
        sniff(head, name)
    except Refused as exc:
        return str(exc)
    return None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
