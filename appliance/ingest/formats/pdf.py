"""PDF: text by page (pypdf); scanned pages read by OCR (`formats.ocr`) when asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from appliance.domain.types import Section
from appliance.ingest.formats.base import Limits, ParsedDocument, ParseError, clean_text
from appliance.ingest.formats.ocr import ocr_pdf_pages, scanned_pages

OcrMode = Literal["auto", "off", "force"]


def parse_pdf(
    data: bytes,
    limits: Limits = Limits(),  # noqa: B008 - a frozen dataclass
    *,
    ocr: OcrMode = "off",
    on_page: Callable[[int], None] | None = None,
) -> ParsedDocument:
    """Text by page (pypdf); with `ocr`, scanned pages ("auto") or all ("force") are
    read by OCR instead, and listed in `ocr_pages`. `on_page(n)` runs before each OCR'd
    page (the sandbox's per-page watchdog)."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ParseError("the PDF is encrypted")
        # the page tree's declared count first: flattening 100k pages costs seconds
        root: Any = reader.trailer["/Root"]
        declared = int(root["/Pages"].get("/Count", 0))
        if declared > limits.max_pages or len(reader.pages) > limits.max_pages:
            count = declared if declared > limits.max_pages else len(reader.pages)
            raise ParseError(
                f"the PDF has {count} pages, more than ingest.max_pages={limits.max_pages}"
            )
        texts = {n: clean_text(page.extract_text() or "") for n, page in enumerate(reader.pages, 1)}
        pages = len(reader.pages)
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ParseError(f"not a readable PDF ({exc})") from exc
    ocr_pages: list[int] = []
    if ocr != "off":
        ocr_pages = sorted(texts) if ocr == "force" else scanned_pages(data, texts)
        for number, text in ocr_pdf_pages(data, ocr_pages, on_page).items():
            texts[number] = clean_text(text)
    sections = [Section(text, page=n) for n, text in sorted(texts.items()) if text]
    if not sections:
        hint = "even by OCR" if ocr != "off" else 'scanned pages need ingest.ocr = "auto"'
        raise ParseError(f"the PDF has no extractable text ({hint})")
    return ParsedDocument("application/pdf", sections, pages, ocr_pages=ocr_pages)
