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
KEY_COLLECTIONS = (
    'The collections the key may read: names, or ["*"] for all of them (the default; admin '
    "keys always read all)."
)
# Lists of names hold plain strings: OpenAPI renders no constraint of a list's items, so
# a name is checked where it is resolved (an unknown or malformed one: 404, never a 400
# the schema did not announce).
KeyCollections = Annotated[
    list[str], Meta(min_length=1, max_length=256, description=KEY_COLLECTIONS)
]
CollectionNames = Annotated[
    list[str],
    Meta(max_length=256, description="Collection names; only ever narrows what the key reads."),
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
