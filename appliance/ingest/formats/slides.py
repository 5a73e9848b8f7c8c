"""Presentations (PPTX, ODP): a section per slide, then one for its speaker notes.

A slide's section holds its title first, then the text of its shapes in the order
the file lists them (groups read recursively, a table row as one " | " line). It is
cited as page = slide number, location "slide 4"; its notes as "notes of slide 4".
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

from appliance.domain.types import Section
from appliance.ingest.formats.base import Limits, ParsedDocument, ParseError, clean_text
from appliance.ingest.formats.office_package import (
    PRESENTATION,
    blocks,
    check_package,
    elements,
    load_odf,
    odf_body,
    odf_metadata,
    ooxml_metadata,
)

_DRAW = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_pages:
        raise ParseError(
            f"the presentation has {count} slides, more than ingest.max_pages={limits.max_pages}"
        )


def _slide_sections(number: int, title: str | None, body: list[str], notes: str) -> list[Section]:
    sections: list[Section] = []
    text = clean_text("\n".join(([title] if title else []) + body))
    if text:
        sections.append(Section(text, page=number, heading=title, location=f"slide {number}"))
    notes = clean_text(notes)
    if notes:
        sections.append(
            Section(notes, page=number, heading=title, location=f"notes of slide {number}")
        )
    return sections


# --- PPTX --------------------------------------------------------------------------------


def _shape_text(shape: Any) -> Iterator[str]:
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        for child in shape.shapes:
            yield from _shape_text(child)
    elif getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            cells = (" ".join(cell.text.split()) for cell in row.cells)
            line = " | ".join(cell for cell in cells if cell)
            if line:
                yield line
    elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        text = shape.text_frame.text.strip()
        if text:
            yield text


def _declared_slides(data: bytes) -> int:
    """The slides the presentation part lists, counted before python-pptx loads the package
    (it parses every slide when it opens one: 1.5 s for 3000 slides)."""
    from xml.etree import ElementTree

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            rels = ElementTree.fromstring(package.read("_rels/.rels"))
            name = "ppt/presentation.xml"
            for rel in rels:
                if str(rel.get("Type", "")).endswith("/officeDocument"):
                    name = str(rel.get("Target", name)).lstrip("/")
            root = ElementTree.fromstring(package.read(name))
    except (KeyError, ValueError, SyntaxError, OSError, zipfile.BadZipFile, zlib.error):
        return 0  # python-pptx reports what is wrong
    return sum(1 for node in root.iter() if str(node.tag).endswith("}sldId"))


def parse_pptx(data: bytes, limits: Limits) -> ParsedDocument:
    from pptx import Presentation
    from pptx.exc import PythonPptxError

    check_package(data, limits, "PPTX")
    _check_count(_declared_slides(data), limits)
    errors = (
        PythonPptxError,
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        SyntaxError,  # lxml's XMLSyntaxError
        RecursionError,
    )
    try:
        presentation = Presentation(io.BytesIO(data))
        count = len(presentation.slides)
    except errors as exc:
        raise ParseError(f"not a readable PPTX file ({exc})") from exc
    _check_count(count, limits)
    sections: list[Section] = []
    try:
        for number, slide in enumerate(presentation.slides, start=1):
            title_shape = slide.shapes.title
            title = " ".join(title_shape.text_frame.text.split()) if title_shape else ""
            body = [
                text
                for shape in slide.shapes
                if title_shape is None or shape.shape_id != title_shape.shape_id
                for text in _shape_text(shape)
            ]
            notes = ""
            if slide.has_notes_slide:
                frame = slide.notes_slide.notes_text_frame
                notes = frame.text if frame is not None else ""
            sections.extend(_slide_sections(number, title or None, body, notes))
    except errors as exc:
        raise ParseError(f"not a readable PPTX file ({exc})") from exc
    return ParsedDocument(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        sections,
        pages=count,
        metadata=ooxml_metadata(data),
    )


# --- ODP ---------------------------------------------------------------------------------


def _is_title(node: Any) -> bool:
    return bool(
        node.qname == (_DRAW, "frame") and node.attributes.get((PRESENTATION, "class")) == "title"
    )


def _lines(node: Any) -> list[str]:
    return [text for _, text in blocks(node)]


def parse_odp(data: bytes, limits: Limits) -> ParsedDocument:
    document = load_odf(data, limits, "ODP")
    body = odf_body(document, "presentation")
    pages = [n for n in (elements(body) if body is not None else ()) if n.qname == (_DRAW, "page")]
    _check_count(len(pages), limits)
    sections: list[Section] = []
    try:
        for number, page in enumerate(pages, start=1):
            title = next((" ".join(_lines(n)) for n in elements(page) if _is_title(n)), "")
            text: list[str] = []
            notes: list[str] = []
            for child in elements(page):
                if child.qname == (PRESENTATION, "notes"):
                    notes.extend(_lines(child))
                elif not _is_title(child):
                    text.extend(_lines(child))
            sections.extend(_slide_sections(number, title or None, text, "\n".join(notes)))
    except RecursionError:
        raise ParseError("not a readable ODP file (nested too deeply)") from None
    return ParsedDocument(
        "application/vnd.oasis.opendocument.presentation",
        sections,
        pages=len(pages),
        metadata=odf_metadata(document),
    )
