"""Turn uploaded files into `Section`s: one parser per format, chosen by `sniff`.

PDF keeps page numbers (pypdf); DOCX, HTML and Markdown keep headings.
Every failure raises `ParseError` with a reason a user can act on; a document past
one of the `Limits` fails naming the config key. These run in the parser sandbox
(`ingest/sandbox.py`), never in the server process.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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


def _decode_text(data: bytes) -> str:
    from appliance.ingest.formats.documents import decode_text

    return decode_text(data)


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def parse_text(data: bytes) -> ParsedDocument:
    return ParsedDocument("text/plain", [Section(_clean(_decode_text(data)))])


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def parse_markdown(data: bytes) -> ParsedDocument:
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []

    def flush() -> None:
        body = _clean("\n".join(lines))
        if body:
            sections.append(Section(body, heading=heading))
        lines.clear()

    in_code = False
    for line in _decode_text(data).splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _MD_HEADING.match(line)
        if match:
            flush()
            heading = match.group(2).strip()
        else:
            lines.append(line)
    flush()
    return ParsedDocument("text/markdown", sections)


_HTML_BLOCKS = (
    "p, div, li, tr, td, th, br, section, article, main, header, footer, aside, pre, "
    "blockquote, dt, dd, ul, ol, table, figcaption, hr"
)
_HEADING_START, _HEADING_END = "\x01", "\x02"
_HTML_HEADING = re.compile(f"{_HEADING_START}(.*?){_HEADING_END}", re.S)


# Site chrome: navigation, banners, sidebars; ARIA landmarks; the nav blocks of DocBook
# (PostgreSQL, many manuals), Sphinx (Python docs: "Previous topic") and MkDocs sites.
_HTML_CHROME = (
    "nav, aside, [role=navigation], [role=banner], [role=contentinfo], [role=complementary], "
    "[role=search], .navheader, .navfooter, .sphinxsidebar, .related, .breadcrumb, "
    ".breadcrumbs, .md-sidebar, .md-header, .md-footer, .skip-link"
)
_HTML_MAIN = "main, [role=main]"


def parse_html(data: bytes, *, main_content: bool = True) -> ParsedDocument:
    """Visible text of the page, split into sections at h1-h6 headings.

    With `main_content`, only the page's main content is kept: the `<main>`
    element when there is one, and never navigation, headers, footers or sidebars
    (which would otherwise be indexed on every page and come back as top hits).
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(_decode_text(data))
    for node in tree.css("script, style, noscript, template, svg, head"):
        node.decompose()
    root = tree.body or tree.root
    if root is None:
        return ParsedDocument("text/html", [])
    if main_content:
        main = root.css_first(_HTML_MAIN)
        if main is not None and main.text(strip=True):
            root = main
        else:  # page-level header/footer are chrome; inside <main>/<article> they are not
            for node in root.css("body > header, body > footer"):
                node.decompose()
        for node in root.css(_HTML_CHROME):
            node.decompose()
    for node in root.css("h1, h2, h3, h4, h5, h6"):
        title = node.text(separator=" ", strip=True).replace(_HEADING_START, "")
        node.replace_with(f"\n{_HEADING_START}{title}{_HEADING_END}\n")
    for node in root.css(_HTML_BLOCKS):
        node.insert_before("\n")
        node.insert_after("\n")
    text = root.text(separator="")
    sections: list[Section] = []
    heading: str | None = None
    position = 0
    for match in _HTML_HEADING.finditer(text):
        body = _clean(text[position : match.start()])
        if body:
            sections.append(Section(body, heading=heading))
        heading = " ".join(match.group(1).split()) or None
        position = match.end()
    body = _clean(text[position:])
    if body:
        sections.append(Section(body, heading=heading))
    return ParsedDocument("text/html", sections)


OcrMode = Literal["auto", "off", "force"]


def parse_pdf(
    data: bytes,
    limits: Limits = Limits(),
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
        texts = {n: _clean(page.extract_text() or "") for n, page in enumerate(reader.pages, 1)}
        pages = len(reader.pages)
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ParseError(f"not a readable PDF ({exc})") from exc
    ocr_pages: list[int] = []
    if ocr != "off":
        from appliance.ingest.formats.ocr import ocr_pdf_pages, scanned_pages

        ocr_pages = sorted(texts) if ocr == "force" else scanned_pages(data, texts)
        for number, text in ocr_pdf_pages(data, ocr_pages, on_page).items():
            texts[number] = _clean(text)
    sections = [Section(text, page=n) for n, text in sorted(texts.items()) if text]
    if not sections:
        hint = "even by OCR" if ocr != "off" else 'scanned pages need ingest.ocr = "auto"'
        raise ParseError(f"the PDF has no extractable text ({hint})")
    return ParsedDocument("application/pdf", sections, pages, ocr_pages=ocr_pages)


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


def parse_docx(data: bytes, limits: Limits = Limits()) -> ParsedDocument:
    import io
    import zipfile

    import docx

    check_zip(data, limits, "DOCX")  # zipfile never reads past a member's declared size
    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError(f"not a readable DOCX file ({exc})") from exc
    sections: list[Section] = []
    heading: str | None = None
    parts: list[str] = []

    def flush() -> None:
        body = _clean("\n".join(parts))
        if body:
            sections.append(Section(body, heading=heading))
        parts.clear()

    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.lower().startswith(("heading", "title")):
            flush()
            heading = text
        else:
            parts.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells if cell.text.strip()]
            if cells:
                parts.append(" | ".join(cells))
    flush()
    return ParsedDocument(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", sections
    )
