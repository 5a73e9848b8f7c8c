"""What every parser shares: `ParseError`, `Limits`, `ParsedDocument`, the text
cleaning every parser applies and the zip-bomb guard.

Every failure raises `ParseError` with a reason a user can act on; a document past
one of the `Limits` fails naming the config key. Parsers run in the parser sandbox
(`ingest/sandbox.py`), never in the server process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appliance.domain.types import Section

MiB = 1024 * 1024


class ParseError(Exception):
    """The file cannot be turned into text; the message says why."""


@dataclass(frozen=True)
class Limits:
    """What one document may cost (`[ingest]`)."""

    max_pages: int = 5000  # PDF pages, slides
    max_unzipped_mb: int = 200
    max_text_mb: int = 50
    max_cells: int = 2_000_000  # spreadsheet cells read (all sheets)
    max_attachments: int = 50  # files one mail may carry
    max_mime_depth: int = 8  # MIME parts nested inside each other


@dataclass(frozen=True)
class ParsedDocument:
    """What a parser made of one file.

    `metadata` holds what the format records, under these keys only when present:
    `title`, `author`, `created`, `modified` (ISO 8601 dates), and for mail `from`,
    `to`, `date` (the subject is the title). `ocr_pages` lists the pages read by OCR.
    `attachments` names files the parser wrote into its `out_dir` (a mail's attachments),
    each to be ingested as a document of its own, linked to this one.
    """

    content_type: str
    sections: list[Section]
    pages: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    ocr_pages: list[int] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)


def clean_text(text: str) -> str:
    """One kind of line end, runs of blanks as one space, at most one empty line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def check_zip(data: bytes, limits: Limits, kind: str = "zip-based") -> None:
    """Refuse a zip bomb from its directory, before any member is decompressed."""
    import io
    import zipfile

    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile as exc:
        raise ParseError(f"not a readable {kind} file ({exc})") from exc
    unzipped = sum(m.file_size for m in members)
    if unzipped > limits.max_unzipped_mb * MiB:
        raise ParseError(
            f"the {kind} file holds {unzipped / MiB:.0f} MiB once decompressed, more than "
            f"ingest.max_unzipped_mb={limits.max_unzipped_mb}"
        )


class HeadedSections:
    """Text gathered under the latest heading: a heading closes the section before it, and
    a section with no text after cleaning is dropped."""

    def __init__(self) -> None:
        self._sections: list[Section] = []
        self._heading: str | None = None
        self._parts: list[str] = []

    def add(self, text: str) -> None:
        self._parts.append(text)

    def heading(self, title: str) -> None:
        self._close()
        self._heading = title

    def done(self) -> list[Section]:
        self._close()
        return self._sections

    def _close(self) -> None:
        body = clean_text("\n".join(self._parts))
        if body:
            self._sections.append(Section(body, heading=self._heading))
        self._parts.clear()
