from __future__ import annotations

from pathlib import Path

import pytest

from appliance.ingest.parsers import ParseError, parse_file
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
        ("broken.docx", b"PK not a zip", "DOCX"),
        ("binary.txt", b"abc\x00\x01\x02def", "not a text file"),
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
