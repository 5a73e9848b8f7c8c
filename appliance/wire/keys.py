"""`/v1/keys`: API keys and their roles."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from appliance.wire.collections import ALL_COLLECTIONS, KeyCollections

Role = Literal["admin", "ingest", "query"]  # what a key may do (the server's `security.keys.Role`)

KeyName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=80,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Who or what the key is for.",
    ),
]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: KeyName
    role: Annotated[
        Role,
        Meta(description="admin: everything; ingest: upload and jobs; query: search, ask, read."),
    ]
    collections: KeyCollections = msgspec.field(default_factory=lambda: [ALL_COLLECTIONS])


class KeyRead(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    created_at: float
    revoked_at: float | None
    collections: Annotated[
        list[str], Meta(description='What it may read: collection names, or ["*"] for all.')
    ] = msgspec.field(default_factory=lambda: [ALL_COLLECTIONS])


class KeyCreated(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    created_at: float
    key: Annotated[str, Meta(description="The key itself: shown this once, never again.")]
    collections: list[str] = msgspec.field(default_factory=lambda: [ALL_COLLECTIONS])


class KeyList(msgspec.Struct, frozen=True):
    keys: list[KeyRead]
