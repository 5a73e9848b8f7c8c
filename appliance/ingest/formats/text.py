"""Plain text and Markdown (a section per heading); `decode_text` for plain text in
any common encoding (CSV and HTML read through it too)."""

from __future__ import annotations

import codecs
import re

from appliance.domain.types import Section
from appliance.ingest.formats.base import HeadedSections, ParsedDocument, ParseError, clean_text

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


def parse_text(data: bytes) -> ParsedDocument:
    return ParsedDocument("text/plain", [Section(clean_text(decode_text(data)))])


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def parse_markdown(data: bytes) -> ParsedDocument:
    sections = HeadedSections()
    in_code = False
    for line in decode_text(data).splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _MD_HEADING.match(line)
        if match:
            sections.heading(match.group(2).strip())
        else:
            sections.add(line)
    return ParsedDocument("text/markdown", sections.done())
