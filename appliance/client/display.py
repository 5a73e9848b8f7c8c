"""Plain-text formatting shared by the command line and the console."""

from __future__ import annotations

import time
from typing import Protocol


class Located(Protocol):
    """Anything that names a file and maybe a page: a citation, an evidence sentence,
    a search hit."""

    @property
    def file_name(self) -> str: ...

    @property
    def page(self) -> int | None: ...


def when(ts: float | None) -> str:
    """A timestamp as local "YYYY-MM-DD HH:MM", "-" when there is none."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def where(item: Located) -> str:
    """The file of a citation, evidence sentence or hit, with its page when it has one."""
    return item.file_name + (f", page {item.page}" if item.page else "")
