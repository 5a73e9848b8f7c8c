"""Word-processing documents: DOCX (python-docx), ODT (odfpy) and RTF (striprtf),
a section per heading where the format has them."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from appliance.domain.types import Section
from appliance.ingest.formats.base import (
    HeadedSections,
    Limits,
    MiB,
    ParsedDocument,
    ParseError,
    check_zip,
    clean_text,
)
from appliance.ingest.formats.office_package import blocks, load_odf, odf_body, odf_metadata


def parse_docx(data: bytes, limits: Limits = Limits()) -> ParsedDocument:  # noqa: B008 - frozen
    import io
    import zipfile

    import docx

    check_zip(data, limits, "DOCX")  # zipfile never reads past a member's declared size
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError(f"not a readable DOCX file ({exc})") from exc
    sections = HeadedSections()

    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.lower().startswith(("heading", "title")):
            sections.heading(text)
        else:
            sections.add(text)
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells if cell.text.strip()]
            if cells:
                sections.add(" | ".join(cells))
    return ParsedDocument(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        sections.done(),
    )


def parse_odt(data: bytes, limits: Limits) -> ParsedDocument:
    document = load_odf(data, limits, "ODT")
    body = odf_body(document, "text")
    sections = HeadedSections()
    try:
        for kind, text in blocks(body) if body is not None else ():
            if kind == "h":
                sections.heading(text)
            else:
                sections.add(text)
    except RecursionError:
        raise ParseError("not a readable ODT file (nested too deeply)") from None
    return ParsedDocument(
        "application/vnd.oasis.opendocument.text",
        sections.done(),
        metadata=odf_metadata(document),
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
        text = clean_text(rtf_to_text(source, encoding=encoding, errors="ignore"))
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
