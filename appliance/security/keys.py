"""API keys: roles, generation, parsing and constant-time checking (pure, no I/O).

A key reads `rag_<id>_<secret>`: `id` (8 hex digits) names the key in lists, logs and
the audit trail; `secret` is 32 random bytes. Only the SHA-256 of the whole key is
stored: with 256 random bits a fast hash is as strong as a slow one, and it keeps
every request's check to microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

import msgspec

from appliance.domain.access import ReadScope
from appliance.wire.collections import ALL_COLLECTIONS

PREFIX = "rag_"
SECRET_BYTES = 32
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


class Role(StrEnum):
    """What a key may do. `admin` may do everything; the others only their own part."""

    ADMIN = "admin"  # keys, deletes, sources, logs, config (and all below)
    INGEST = "ingest"  # upload, jobs
    QUERY = "query"  # search, ask, reading documents


def allows(held: Role, needed: Role) -> bool:
    return held is Role.ADMIN or held is needed


class KeyRecord(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: Role
    key_hash: str
    created_at: float
    revoked_at: float | None = None
    collections: tuple[str, ...] = (ALL_COLLECTIONS,)  # ids it may read; `*`: all

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope(self) -> ReadScope:
        return ReadScope.of(self.collections, admin=self.role is Role.ADMIN)


def new_key() -> tuple[str, str, str]:
    """A fresh key: (id, the key to hand out once, its stored hash)."""
    key_id = secrets.token_hex(4)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return key_id, key, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 8 or not secret:
        return None
    return key_id


def check(key: str, record: KeyRecord | None) -> bool:
    """Whether `key` is `record`'s, compared in constant time (also when unknown)."""
    expected = record.key_hash if record is not None and record.active else _DUMMY_HASH
    ok = hmac.compare_digest(hash_key(key), expected)
    return ok and record is not None and record.active
