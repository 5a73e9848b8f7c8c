"""Collection names as a person types them, checked as the server checks them, so the
command line and the console say what is wrong before anything is sent."""

from __future__ import annotations

import msgspec

from appliance.wire.collections import ALL_COLLECTIONS, CollectionName


def collection_name(text: str) -> str:
    """`text` as a collection name; ValueError naming what a name may hold."""
    try:
        return msgspec.convert(text, CollectionName)
    except msgspec.ValidationError:
        raise ValueError(
            f"{text!r} is not a collection name (lower-case letters, digits, - and _)"
        ) from None


def key_collections(text: str) -> list[str]:
    """`hr, finance` or `*` as the collections a key reads; ValueError if it names none or
    a name is not one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("name at least one collection, or * for all")
    if names == [ALL_COLLECTIONS]:
        return names
    return [collection_name(name) for name in names]
