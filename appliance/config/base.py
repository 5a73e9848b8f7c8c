"""What every config section is: a frozen, strict msgspec Struct (an unknown key is an
error naming it, not a setting silently ignored)."""

from __future__ import annotations

import msgspec


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Frozen, strict base for every config section."""
