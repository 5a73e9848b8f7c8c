"""Client file names, made safe to show (pure). They never reach the filesystem:
uploads are stored under server-made names; this is display metadata only."""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 200
MAX_SUFFIX_CHARS = 16


def display_name(raw: str | None) -> str:
    """`raw` without its directory, control or format characters (NUL, ANSI escapes,
    bidi overrides, zero-width marks), in NFC, bounded in length; "" if nothing is left."""
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    name = " ".join(name.split()).strip(" ")
    if name in (".", ".."):
        return ""
    if len(name) > MAX_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        if dot and stem and len(suffix) <= MAX_SUFFIX_CHARS:
            name = stem[: MAX_NAME_CHARS - len(suffix) - 2] + "…." + suffix
        else:
            name = name[: MAX_NAME_CHARS - 1] + "…"
    return name
