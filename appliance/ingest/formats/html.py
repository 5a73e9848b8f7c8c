"""HTML: the page's visible text (its main content by default), a section per heading."""

from __future__ import annotations

import re

from appliance.domain.types import Section
from appliance.ingest.formats.base import ParsedDocument, clean_text
from appliance.ingest.formats.text import decode_text

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

    tree = LexborHTMLParser(decode_text(data))
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
        body = clean_text(text[position : match.start()])
        if body:
            sections.append(Section(body, heading=heading))
        heading = " ".join(match.group(1).split()) or None
        position = match.end()
    body = clean_text(text[position:])
    if body:
        sections.append(Section(body, heading=heading))
    return ParsedDocument("text/html", sections)
