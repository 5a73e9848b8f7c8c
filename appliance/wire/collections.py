"""`/v1/collections`: the named sets of documents a key may be allowed to read.

Every document belongs to exactly one collection (`default` unless the upload, the
source or `appliance ingest --collection` names another). A key reads the collections
its `collections` list names, or all of them with `*`; admin keys read everything."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

DEFAULT_COLLECTION = "default"  # where documents go when none is named, and older ones
ALL_COLLECTIONS = "*"  # a key's collections: every collection, now and later

CollectionName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Name of a collection: lower-case letters, digits, - and _ (up to 64).",
    ),
]
KeyCollection = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^(\*|[a-z0-9][a-z0-9_-]*)$",
        description="A collection's name, or `*` for every collection.",
    ),
]
KEY_COLLECTIONS = (
    'The collections the key may read: names, or ["*"] for all of them (the default; admin '
    "keys always read all)."
)
KeyCollections = Annotated[
    list[KeyCollection], Meta(min_length=1, max_length=256, description=KEY_COLLECTIONS)
]


class CollectionCreate(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: CollectionName


class CollectionRename(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[CollectionName, Meta(description="The collection's new name.")]


class CollectionRead(msgspec.Struct, frozen=True):
    name: str
    id: Annotated[
        str, Meta(description="Stable id: keys and chunks refer to it, so a rename is instant.")
    ]
    created_at: float
    documents: int


class CollectionList(msgspec.Struct, frozen=True):
    collections: list[CollectionRead]


class CollectionDeleted(msgspec.Struct, frozen=True):
    name: str
    documents_deleted: int
