"""Read one file into a `ParsedDocument`: its kind from content and name together
(`sniff`), then the parser of that kind (`formats.*`). Runs in the sandbox."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.ingest.formats import documents, html, mail, ocr, pdf, slides, tables, text
from appliance.ingest.formats.base import Limits, MiB, ParsedDocument, ParseError
from appliance.ingest.formats.pdf import OcrMode
from appliance.ingest.sniff import TEXT_KINDS, Refused, sniff

__all__ = ["Limits", "ParseError", "ParseOptions", "ParsedDocument", "file_type", "parse_file"]


@dataclass(frozen=True)
class ParseOptions:
    html_main_content: bool = True  # drop navigation, headers and sidebars of web pages
    ocr: OcrMode = "auto"  # scanned PDF pages: "auto" (detected), "off", "force" (every page)
    out_dir: Path | None = None  # where a mail's attachments are written (None: skipped)
    on_page: Callable[[int], None] | None = None  # called before each page read by OCR


def file_type(file_name: str) -> str:
    """The file type recorded for a document: its extension, lower case, no dot."""
    return Path(file_name).suffix.lower().lstrip(".") or "unknown"


def _parse_kind(kind: str, data: bytes, opts: ParseOptions, limits: Limits) -> ParsedDocument:
    # the formats read from the bytes and the limits alone
    packaged: dict[str, Callable[[bytes, Limits], ParsedDocument]] = {
        "docx": documents.parse_docx,
        "odt": documents.parse_odt,
        "rtf": documents.parse_rtf,
        "xlsx": tables.parse_xlsx,
        "ods": tables.parse_ods,
        "pptx": slides.parse_pptx,
        "odp": slides.parse_odp,
    }
    if kind in packaged:
        return packaged[kind](data, limits)
    match kind:
        case "text":
            return text.parse_text(data)
        case "markdown":
            return text.parse_markdown(data)
        case "html":
            return html.parse_html(data, main_content=opts.html_main_content)
        case "pdf":
            return pdf.parse_pdf(data, limits, ocr=opts.ocr, on_page=opts.on_page)
        case "csv":
            return tables.parse_delimited(data, limits, delimiter=None)
        case "tsv":
            return tables.parse_delimited(data, limits, delimiter="\t")
        case "eml":
            return mail.parse_eml(data, limits, opts.out_dir)
        case "msg":
            return mail.parse_msg(data, limits, opts.out_dir)
        case "image":
            if opts.ocr == "off":
                raise ParseError('images are read by OCR, and ingest.ocr = "off"')
            return ocr.parse_image(data, limits, opts.on_page)
    raise ParseError(f"no parser for `{kind}`")  # pragma: no cover - sniff knows the kinds


def _read(path: Path | int, size: int = -1) -> bytes:
    """The first `size` bytes (all: -1) of `path` or of a file descriptor open on a file."""
    with open(path, "rb", closefd=not isinstance(path, int)) as fh:
        fh.seek(0)
        return fh.read(size)


def parse_file(
    path: Path | int,
    file_name: str,
    *,
    options: ParseOptions = ParseOptions(),
    limits: Limits | None = None,
) -> ParsedDocument:
    """Parse `path`, or a file descriptor (the sandbox's child gets no paths), uploaded as
    `file_name`, within `limits` (default: `Limits()`)."""
    limits = limits or Limits()
    head = _read(path, 8192)
    try:
        kind = sniff(head, file_name)
    except Refused as exc:
        raise ParseError(str(exc)) from None
    size = os.stat(path).st_size
    if kind in TEXT_KINDS and size > limits.max_text_mb * MiB:
        raise ParseError(
            f"the file holds {size / MiB:.0f} MiB of text, more than "
            f"ingest.max_text_mb={limits.max_text_mb}"
        )
    parsed = _parse_kind(kind, _read(path), options, limits)
    if not any(s.text.strip() for s in parsed.sections):
        raise ParseError("no text found in the file")
    text_chars = sum(len(s.text) for s in parsed.sections)
    if text_chars > limits.max_text_mb * MiB:
        raise ParseError(
            f"the document yields {text_chars / MiB:.0f} MiB of text, more than "
            f"ingest.max_text_mb={limits.max_text_mb}"
        )
    return parsed
