"""The health and state of a running appliance: `/healthz`, `/readyz`, `/v1/status`
and `/v1/logs`."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok"]


class Readiness(msgspec.Struct, frozen=True):
    status: Literal["ready", "starting", "unavailable"]
    checks: dict[str, str]


class ModelStatus(msgspec.Struct, frozen=True):
    role: Literal["chat", "embedding"]
    name: str
    file_size_bytes: int
    context_tokens: Annotated[int, Meta(description="Context of one request (one slot).")]
    slots: Annotated[int, Meta(description="Requests served at once (continuous batching).")]
    threads: int


class StatusRead(msgspec.Struct, frozen=True):
    version: str
    started_at: float
    uptime_s: float
    models: list[ModelStatus]
    ram_budget_bytes: int
    ram_planned_bytes: int
    store: Annotated[str, Meta(description='"embedded", or the Qdrant server URL\'s host.')]
    documents: Annotated[int, Meta(description="Documents indexed in the collections it reads.")]
    data_dir_bytes: Annotated[int, Meta(description="Size of the data dir (counted every 30 s).")]
    disk_free_bytes: int
    disk_total_bytes: int
    supported_extensions: Annotated[
        list[str], Meta(description="File name endings an upload may have.")
    ]


class LogLine(msgspec.Struct, frozen=True):
    seq: int
    time: float
    level: str
    logger: str
    message: str


class LogPage(msgspec.Struct, frozen=True):
    lines: list[LogLine]
    last_seq: Annotated[
        int, Meta(description="The newest line's number: pass it as `after` to follow.")
    ]
