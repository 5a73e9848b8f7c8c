"""What the client finds on this machine: the server's URL and the API key from the
config and the environment, and the files an upload sends."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from appliance.config.paths import admin_key_file
from appliance.config.schema import Settings

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


def server_url(settings: Settings, url: str | None = None) -> str:
    """`url`, else this machine's server from the config (a wildcard host is loopback)."""
    if url:
        return url.rstrip("/")
    host = settings.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    scheme = "https" if settings.server.tls_cert else "http"
    return f"{scheme}://{host}:{settings.server.port}"


def api_key(settings: Settings, key: str | None = None) -> str | None:
    """`key`, else $APPLIANCE_API_KEY, else the bootstrap admin key of this server's data
    dir (readable on the server itself, by its user or root)."""
    if key:
        return key
    if os.environ.get("APPLIANCE_API_KEY"):
        return os.environ["APPLIANCE_API_KEY"]
    try:
        return admin_key_file(settings).read_text(encoding="utf-8").strip() or None
    except OSError:  # not on the server, or not allowed to read it
        return None
