"""The `[security]` section: who may call the API, from where, and how often."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from appliance.config.base import Base


class SecuritySettings(Base, frozen=True):
    rate_limit_per_minute: Annotated[
        int,
        Meta(
            ge=0,
            description=(
                "Requests one API key may make per minute (429 with RateLimit-* headers "
                "beyond); 0 = no limit."
            ),
        ),
    ] = 600
    metrics_scrapers: Annotated[
        list[str],
        Meta(
            description=(
                "Client addresses allowed to read /metrics without a key, e.g. "
                '["127.0.0.1", "10.0.0.5"] for a Prometheus server; empty: a key is needed.'
            )
        ),
    ] = msgspec.field(default_factory=list)
    allowed_origins: Annotated[
        list[str],
        Meta(
            description=(
                "Browser origins (e.g. https://intranet.example) allowed to call the API: "
                "CORS is on for them, and they pass the Origin check of uploads, deletes and "
                "the WebSocket. Empty: CORS off, only same-origin pages (like /docs)."
            )
        ),
    ] = msgspec.field(default_factory=list)
    audit_log: Annotated[
        bool,
        Meta(
            description=(
                "Append admin actions and authentication failures, as JSON lines, to "
                "<data_dir>/audit.log."
            )
        ),
    ] = True
