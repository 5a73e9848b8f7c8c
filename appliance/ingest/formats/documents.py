"""ODT and RTF documents; `decode_text` for plain text in any common encoding.

Also the helpers the other office formats share: the zip-bomb guard with the
format's name, loading an OpenDocument package, and reading the metadata of
OpenDocument (`meta.xml`) and Office Open XML (`docProps/core.xml`) files.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

from appliance.domain.types import Section
from appliance.ingest.parsers import Limits, MiB, ParsedDocument, ParseError, _clean, check_zip

TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
PRESENTATION = "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"
_META = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
_DC = "http://purl.org/dc/elements/1.1/"

# --- plain text --------------------------------------------------------------------------

_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes) -> str:
    """Text in UTF-8, UTF-16/32 with a BOM, Windows-1252/Latin-1 or what charset-normalizer
    recognises. Raises `ParseError` only for binary content (NUL bytes without a BOM)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if b"\x00" in data[:8192]:
        raise ParseError("binary content: not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    sample = data[: 1 << 20]
    if _mostly_utf8(sample):  # UTF-8 with a stray byte or two (files pasted together)
        return data.decode("utf-8-sig", errors="replace")
    return data.decode(_guess_encoding(sample), errors="replace")


def _mostly_utf8(sample: bytes) -> bool:
    text = sample.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for char in text if char > "\x7f") - bad
    return good >= 10 * bad


def _guess_encoding(sample: bytes) -> str:
    """charset-normalizer's guess, but Windows-1252 when it reads the sample as well.

    On short Western text charset-normalizer ties between code pages and picks one
    that turns "très" into "trčs" (cp1250), or even UTF-16 for four bytes.
    """
    from charset_normalizer import from_bytes

    matches = [m for m in from_bytes(sample) if not m.encoding.startswith(("utf_16", "utf_32"))]
    western = from_bytes(sample, cp_isolation=["cp1252"]).best()
    if western is not None and (not matches or western.chaos <= matches[0].chaos + 0.01):
        return "cp1252"
    return matches[0].encoding if matches else "cp1252"


# --- shared by the office formats --------------------------------------------------------


def check_package(data: bytes, limits: Limits, kind: str) -> None:
    """`parsers.check_zip` (the zip-bomb guard), a file that is no zip named as `kind`."""
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


# --- ODT, RTF ----------------------------------------------------------------------------


def parse_odt(data: bytes, limits: Limits) -> ParsedDocument:
    document = load_odf(data, limits, "ODT")
    body = odf_body(document, "text")
    sections: list[Section] = []
    heading: str | None = None
    parts: list[str] = []

    def flush() -> None:
        text = _clean("\n".join(parts))
        if text:
            sections.append(Section(text, heading=heading))
        parts.clear()

    try:
        for kind, text in blocks(body) if body is not None else ():
            if kind == "h":
                flush()
                heading = text
            else:
                parts.append(text)
    except RecursionError:
        raise ParseError("not a readable ODT file (nested too deeply)") from None
    flush()
    return ParsedDocument(
        "application/vnd.oasis.opendocument.text", sections, metadata=odf_metadata(document)
    )


def _striprtf() -> Callable[..., str]:
    from striprtf import striprtf

    convert: Callable[..., str] = striprtf.rtf_to_text
    return convert


def parse_rtf(data: bytes, limits: Limits) -> ParsedDocument:
    rtf_to_text = _striprtf()

    if len(data) > limits.max_text_mb * MiB:
        raise ParseError(
            f"the file holds {len(data) / MiB:.0f} MiB of text, more than "
            f"ingest.max_text_mb={limits.max_text_mb}"
        )
    if not data.lstrip().startswith(b"{\\rtf"):
        raise ParseError("not an RTF file (it does not start with {\\rtf)")
    codepage = re.search(rb"\\ansicpg(\d{3,5})", data[:4096])
    encoding = f"cp{int(codepage.group(1))}" if codepage else "cp1252"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "cp1252"
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError:  # raw 8-bit characters: the declared code page
        source = data.decode(encoding, errors="replace")
    try:
        text = _clean(rtf_to_text(source, encoding=encoding, errors="ignore"))
    except (ValueError, IndexError, LookupError, RecursionError) as exc:
        raise ParseError(f"not a readable RTF file ({exc})") from exc
    return ParsedDocument(
        "application/rtf", [Section(text)] if text else [], metadata=_rtf_info(source, encoding)
    )


def _rtf_info(source: str, encoding: str) -> dict[str, str]:
    rtf_to_text = _striprtf()

    metadata: dict[str, str] = {}
    info = re.search(r"\{\\info\b", source)
    if info is None:
        return metadata
    group = source[info.start() : info.start() + 65536]
    for key, name in (("title", "title"), ("author", "author")):
        match = re.search(r"\{\\" + name + r"(?![a-z])\s?((?:[^{}\\]|\\.)*)\}", group)
        if match:
            value = rtf_to_text("{\\rtf1 " + match.group(1) + "}", encoding, errors="ignore")
            if value.strip():
                metadata[key] = " ".join(value.split())
    for key, name in (("created", "creatim"), ("modified", "revtim")):
        match = re.search(r"\{\\" + name + r"((?:\\[a-z]+\d+\s?)+)\}", group)
        if match:
            parts = dict(re.findall(r"\\(yr|mo|dy|hr|min)(\d+)", match.group(1)))
            if {"yr", "mo", "dy"} <= parts.keys():
                value = f"{int(parts['yr']):04d}-{int(parts['mo']):02d}-{int(parts['dy']):02d}"
                if "hr" in parts:
                    value += f"T{int(parts['hr']):02d}:{int(parts.get('min', 0)):02d}:00"
                metadata[key] = value
    return metadata
