"""Turn uploaded files into `Section`s: one parser per format, chosen by extension.

PDF keeps page numbers (pypdf); DOCX, HTML and Markdown keep headings.
Every failure raises `ParseError` with a reason a user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.domain.types import Section


class ParseError(Exception):
    """The file cannot be turned into text; the message says why."""


@dataclass(frozen=True)
class ParsedDocument:
    content_type: str
    sections: list[Section]
    pages: int | None = None


def _decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ParseError("binary content: not a text file")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ParseError("text is neither UTF-8 nor Windows-1252")


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


def parse_pdf(data: bytes) -> ParsedDocument:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ParseError("the PDF is encrypted")
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = _clean(page.extract_text() or "")
            if text:
                sections.append(Section(text, page=number))
        pages = len(reader.pages)
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ParseError(f"not a readable PDF ({exc})") from exc
    if not sections:
        raise ParseError("the PDF has no extractable text (scanned images need OCR)")
    return ParsedDocument("application/pdf", sections, pages)


def parse_docx(data: bytes) -> ParsedDocument:
    import io
    import zipfile

    import docx

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


PARSERS: dict[str, Callable[[bytes], ParsedDocument]] = {
    ".txt": parse_text,
    ".text": parse_text,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
    ".docx": parse_docx,
}
SUPPORTED_EXTENSIONS = tuple(sorted(PARSERS))


def parse_file(path: Path, file_name: str, *, html_main_content: bool = True) -> ParsedDocument:
    """Parse `path` (uploaded as `file_name`) with the parser of its extension."""
    suffix = Path(file_name).suffix.lower()
    parser = PARSERS.get(suffix)
    if parser is None:
        raise ParseError(
            f"unsupported file type `{suffix or '(none)'}`; supported: "
            + ", ".join(SUPPORTED_EXTENSIONS)
        )
    data = path.read_bytes()
    if not data.strip():
        raise ParseError("the file is empty")
    if parser is parse_html:
        parsed = parse_html(data, main_content=html_main_content)
    else:
        parsed = parser(data)
    if not any(s.text.strip() for s in parsed.sections):
        raise ParseError("no text found in the file")
    return parsed
