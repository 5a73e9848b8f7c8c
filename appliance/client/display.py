"""Plain-text formatting shared by the command line and the console."""

from __future__ import annotations

import time

from appliance.wire.answers import Citation, Evidence


def when(ts: float | None) -> str:
    """A timestamp as local "YYYY-MM-DD HH:MM", "-" when there is none."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def where(item: Citation | Evidence) -> str:
    """The file of a citation or evidence sentence, with its page when it has one."""
    return item.file_name + (f", page {item.page}" if item.page else "")
