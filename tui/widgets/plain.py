"""Text from outside the console, shown as it is: never parsed as markup, never able
to reach the terminal as a control sequence.

File names, document text, answers, key names, folder paths, log lines and error
messages come from the server (and, through it, from whoever wrote the files). A
Textual widget given a `str` parses it as markup: `[/]x.txt` raises MarkupError and
`[@click=app.quit]` becomes a clickable action. Every such string enters a widget
through `plain()` (a `Text`, which no widget parses) or `cell()` (a table cell). Control
characters are made visible instead of being sent to the terminal (ESC could set the
title, write the clipboard or repaint the screen); bidi overrides become U+FFFD, so a
name cannot display reversed.
"""

from __future__ import annotations

from typing import Final

from rich.text import Text

_BIDI_CONTROLS: Final = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))


def _translation(one_line: bool) -> dict[int, str]:
    # C0 controls as their Unicode control pictures (␀ … ␟, ␡); C1 controls and bidi
    # overrides as U+FFFD; a carriage return dropped.
    table = {code: chr(0x2400 + code) for code in range(0x20)}
    table[0x7F] = "\u2421"
    table |= {code: "\ufffd" for code in (*range(0x80, 0xA0), *_BIDI_CONTROLS)}
    table[ord("\r")] = ""
    if one_line:
        table[ord("\t")] = " "
    else:
        del table[ord("\n")], table[ord("\t")]
    return table


_MULTI_LINE: Final = _translation(one_line=False)
_ONE_LINE: Final = _translation(one_line=True)


def clean(text: str, *, one_line: bool = False) -> str:
    """`text` with its control characters made visible (newlines and tabs kept unless
    `one_line`): safe to hand to the terminal, still markup (use it where a widget
    takes plain text, e.g. a notification with markup off)."""
    return text.translate(_ONE_LINE if one_line else _MULTI_LINE)


def plain(text: str) -> Text:
    """`text` for a Static, Label or log: literal, whatever brackets it holds."""
    return Text(clean(text), end="")


def cell(text: str) -> Text:
    """`text` for a DataTable cell: literal and on one line (as the table renders a
    `str` cell, without its markup)."""
    return Text(clean(text, one_line=True), no_wrap=True, end="")
