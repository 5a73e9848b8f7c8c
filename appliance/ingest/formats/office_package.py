"""The zip packages of the office formats, shared by `documents`, `slides` and `tables`:
the zip-bomb guard with the format's name, loading an OpenDocument package and walking
its tree, and reading the metadata of OpenDocument (`meta.xml`) and Office Open XML
(`docProps/core.xml`) files.
"""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from appliance.ingest.formats.base import Limits, ParseError, check_zip

TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
PRESENTATION = "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"
_META = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
_DC = "http://purl.org/dc/elements/1.1/"


def check_package(data: bytes, limits: Limits, kind: str) -> None:
    """`base.check_zip` (the zip-bomb guard), a file that is no zip named as `kind`."""
    try:
        zipfile.ZipFile(io.BytesIO(data)).close()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ParseError(f"not a readable {kind} file ({exc})") from exc
    check_zip(data, limits, kind)


def iso_date(value: str | None) -> str | None:
    """An ISO 8601 date as a document records it, to the second; None if it is not one."""
    match = re.match(
        r"\s*(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)(?:[.,]\d+)?(Z|[+-]\d{2}:?\d{2})?\s*$",
        value or "",
    )
    return match.group(1) + (match.group(2) or "") if match else None


def ooxml_metadata(data: bytes) -> dict[str, str]:
    """Title, author and dates from an OOXML package's core properties.

    Read here rather than from openpyxl/python-pptx: both fill a missing date with
    the current time (and python-pptx a missing title with "PowerPoint Presentation").
    """
    from xml.etree import ElementTree  # expat >= 2.4 refuses entity expansion bombs

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            rels = ElementTree.fromstring(package.read("_rels/.rels"))
            name = "docProps/core.xml"
            for rel in rels:
                if rel.get("Type", "").endswith("/core-properties"):
                    name = rel.get("Target", name).lstrip("/")
            root = ElementTree.fromstring(package.read(name))
    except (KeyError, ValueError, SyntaxError, zipfile.BadZipFile):
        return {}
    terms = "http://purl.org/dc/terms/"
    found = {
        "title": root.findtext(f"{{{_DC}}}title"),
        "author": root.findtext(f"{{{_DC}}}creator"),
        "created": iso_date(root.findtext(f"{{{terms}}}created")),
        "modified": iso_date(root.findtext(f"{{{terms}}}modified")),
    }
    return {key: " ".join(value.split()) for key, value in found.items() if value and value.strip()}


class _Discard(io.TextIOBase):
    """Swallows odfpy's prints (it dumps a whole malformed XML part to stdout)."""

    failed = False

    def write(self, text: str) -> int:
        self.failed = self.failed or "FAILED TO PARSE" in text
        return len(text)


def load_odf(data: bytes, limits: Limits, kind: str) -> Any:
    """The odfpy document of an OpenDocument package, after the zip-bomb guard."""
    from odf.opendocument import load

    check_package(data, limits, kind)
    sink = _Discard()
    try:
        with contextlib.redirect_stdout(sink):
            document = load(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, IndexError, AttributeError) as exc:
        raise ParseError(f"not a readable {kind} file ({exc})") from exc
    except SyntaxError as exc:  # SAX errors outside odfpy's own handler
        raise ParseError(f"not a readable {kind} file ({exc})") from exc
    if sink.failed:
        raise ParseError(f"not a readable {kind} file (malformed XML)")
    return document


def odf_body(document: Any, kind: str) -> Any:
    """The office:<kind> element (text, spreadsheet, presentation) of the document body."""
    for part in elements(document.topnode):
        if part.qname == (OFFICE, "body"):
            for child in elements(part):
                if child.qname == (OFFICE, kind):
                    return child
    return None


def odf_metadata(document: Any) -> dict[str, str]:
    values: dict[tuple[str, str], str] = {}
    for node in elements(document.meta):
        values.setdefault(node.qname, " ".join(inline_text(node).split()))
    found = {
        "title": values.get((_DC, "title")),
        "author": values.get((_META, "initial-creator")) or values.get((_DC, "creator")),
        "created": iso_date(values.get((_META, "creation-date"))),
        "modified": iso_date(values.get((_DC, "date"))),
    }
    return {key: value for key, value in found.items() if value}


def elements(node: Any) -> Iterator[Any]:
    return (child for child in node.childNodes if child.nodeType == child.ELEMENT_NODE)


_SKIPPED = {
    (OFFICE, "annotation"),  # comments
    (TEXT, "note-citation"),
    (TEXT, "tracked-changes"),  # holds deleted text
    (TEXT, "sequence-decls"),
    (OFFICE, "forms"),
    (PRESENTATION, "notes"),  # read on their own
}


def inline_text(node: Any) -> str:
    """The text of a paragraph: spaces, tabs and line breaks as written, comments left out."""
    parts: list[str] = []
    for child in node.childNodes:
        if child.nodeType == child.TEXT_NODE:
            parts.append(child.data)
        elif child.nodeType != child.ELEMENT_NODE or child.qname in _SKIPPED:
            continue
        elif child.qname == (TEXT, "s"):
            parts.append(" " * int(child.attributes.get((TEXT, "c")) or 1))
        elif child.qname == (TEXT, "tab"):
            parts.append("\t")
        elif child.qname == (TEXT, "line-break"):
            parts.append("\n")
        else:
            parts.append(inline_text(child))
    return "".join(parts)


def blocks(node: Any) -> Iterator[tuple[str, str]]:
    """("h", heading) and ("p", text) in reading order; a table row is one " | " line."""
    for child in elements(node):
        if child.qname in _SKIPPED:
            continue
        if child.qname in ((TEXT, "h"), (TEXT, "p")):
            text = " ".join(inline_text(child).split())
            if text:
                yield child.qname[1], text
        elif child.qname == (TABLE, "table-row"):
            cells = (" ".join(text for _, text in blocks(cell)) for cell in elements(child))
            row = " | ".join(cell for cell in cells if cell)
            if row:
                yield "p", row
        else:
            yield from blocks(child)
