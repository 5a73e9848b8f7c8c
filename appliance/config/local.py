"""Where this machine's server is and which key to use: the server's URL from the config,
the API key from the command line, the environment or the data dir's admin key file.
Shared by the command line and the console."""

from __future__ import annotations

import os

from appliance.config.paths import admin_key_file
from appliance.config.schema import Settings


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
