"""What a request may read: the collections of its key (pure; the server builds it).

`collections` holds collection ids; None means every collection (admin keys, and keys
made with `*`). Every read of document content passes it down to the one store query
or journal read that returns the content, so nothing outside it is ever fetched."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from appliance.wire.collections import ALL_COLLECTIONS


@dataclass(frozen=True)
class ReadScope:
    collections: frozenset[str] | None = None

    @classmethod
    def of(cls, granted: Collection[str], *, admin: bool = False) -> ReadScope:
        """A key's scope from its stored list (`*`: all)."""
        if admin or ALL_COLLECTIONS in granted:
            return cls(None)
        return cls(frozenset(granted))

    def admits(self, collection_id: str) -> bool:
        return self.collections is None or collection_id in self.collections

    def narrowed(self, ids: Collection[str] | None) -> frozenset[str] | None:
        """The collections a request naming `ids` reads (None: all the scope has); the
        caller checks beforehand that each is admitted."""
        if ids is None:
            return self.collections
        return frozenset(i for i in ids if self.admits(i))


EVERYTHING = ReadScope(None)  # in-process callers with no key (evaluation, tests)
