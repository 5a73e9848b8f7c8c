from __future__ import annotations

from pathlib import Path

import pytest

from appliance.ingest.reader import ParseError, ParseOptions, parse_file
from tests.docs_factory import FACTS, make_all


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_all(tmp_path_factory.mktemp("docs"))


def test_pdf_keeps_pages(docs: dict[str, Path]) -> None:
    parsed = parse_file(docs["pdf"], "facilities.pdf")
    assert parsed.pages == 3
    [hit] = [s for s in parsed.sections if "emergency generator" in s.text]
    assert hit.page == 2


def test_docx_keeps_headings(docs: dict[str, Path]) -> None:
    parsed = parse_file(docs["docx"], "remote-access.docx")
    [hit] = [s for s in parsed.sections if FACTS["docx"] in s.text]
    assert hit.heading == "Passwords"


def test_html_drops_scripts_and_keeps_headings(docs: dict[str, Path]) -> None:
    parsed = parse_file(docs["html"], "faq.html")
    text = " ".join(s.text for s in parsed.sections)
    assert "do not index" not in text and "color:red" not in text
    [hit] = [s for s in parsed.sections if "Hermes" in s.text]
    assert hit.heading == "Printers"


def test_markdown_headings(docs: dict[str, Path]) -> None:
    parsed = parse_file(docs["md"], "backups.md")
    assert parsed.sections[0].heading == "Backups"
    assert FACTS["md"] in parsed.sections[0].text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"  \n\n ", "empty"),
        ("tool.exe", b"MZ\x00\x00", "unsupported file type `.exe`"),
        ("noext", b"hello", "unsupported file type"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "PDF"),
        ("broken.docx", b"PK not a zip", "not a DOCX"),
        ("binary.txt", b"abc\x00\x01\x02def", "binary"),
    ],
)
def test_bad_files_say_why(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ParseError, match=reason):
        parse_file(path, name)


def test_latin1_text_is_read(tmp_path: Path) -> None:
    path = tmp_path / "old.txt"
    path.write_bytes("Caf\xe9 opens at 8.".encode("cp1252"))
    assert parse_file(path, "old.txt").sections[0].text == "Café opens at 8."


SITE_PAGE = """<html><body>
<div class="navheader"><table><tr><td><a href="p.html">Prev</a></td><th>SQL Commands</th>
<td><a href="n.html">Next</a></td></tr></table></div>
<header><a href="/">Acme Docs home</a></header>
<nav><ul><li>Previous topic: heapq - Heap queue algorithm</li></ul></nav>
<div role="navigation">Quick search</div>
<div class="sphinxsidebar">This page: Show source</div>
<div class="body"><h1>bisect - array bisection</h1>
<p>The bisect module keeps a sorted list in order without sorting it after each insert.</p>
<aside>Related: heapq</aside></div>
<div class="navfooter">Prev Up Home Next</div>
<footer>Copyright Acme</footer>
</body></html>"""


@pytest.mark.parametrize("main_content", [True, False])
def test_html_main_content_drops_site_chrome(tmp_path: Path, main_content: bool) -> None:
    page = tmp_path / "bisect.html"
    page.write_text(SITE_PAGE, encoding="utf-8")
    parsed = parse_file(page, page.name, options=ParseOptions(html_main_content=main_content))
    text = " ".join(s.text for s in parsed.sections)
    assert "keeps a sorted list in order" in text
    assert "bisect - array bisection" in [s.heading for s in parsed.sections]
    chrome = ["Previous topic", "Quick search", "Show source", "Related: heapq", "Prev", "Home",
              "Copyright", "Acme Docs home"]  # fmt: skip
    if main_content:
        assert [c for c in chrome if c in text] == []
    else:
        assert all(c in text for c in chrome)


def test_html_main_element_is_the_content(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body><div>Site menu: Products Pricing</div><main><article><header>"
        "<h1>Backups</h1></header><p>Backups run nightly at two.</p></article></main>"
        "<div>Cookie banner</div></body></html>",
        encoding="utf-8",
    )
    parsed = parse_file(page, page.name)
    assert [(s.heading, s.text) for s in parsed.sections] == [
        ("Backups", "Backups run nightly at two.")
    ]
