"""Content sniffing and display names (pure, no model)."""

from __future__ import annotations

import pytest

from appliance.ingest.names import display_name
from appliance.ingest.sniff import Refused, sniff


@pytest.mark.parametrize(
    ("name", "head", "kind"),
    [
        ("a.pdf", b"%PDF-1.7\n", "pdf"),
        ("a.docx", b"PK\x03\x04rest", "docx"),
        ("a.HTML", b"<!doctype html><p>x", "html"),
        ("notes.md", b"# Title\n", "markdown"),
        ("utf16.txt", "\ufeffhello".encode("utf-16"), "text"),
    ],
)
def test_kind_from_name_and_content(name: str, head: bytes, kind: str) -> None:
    assert sniff(head, name) == kind


@pytest.mark.parametrize(
    ("name", "head", "reason"),
    [
        ("a.pdf", b"\x7fELF....", "`.pdf` but the content is an ELF executable"),
        ("a.docx", b"%PDF-1.4", "`.docx` but the content is a PDF"),
        ("a.txt", b"MZ\x90\x00\x03", "`.txt` but the content is binary"),
        ("a.md", b"ab\x00cd", "binary"),
        ("a.exe", b"MZ", "unsupported file type `.exe`"),
        ("noext", b"hello", "unsupported file type `(none)`"),
        ("a." + "x" * 300, b"hello", "`(too long)`"),
        ("a.txt", b"   \n", "empty"),
    ],
)
def test_refusals_say_why(name: str, head: bytes, reason: str) -> None:
    with pytest.raises(Refused, match=None) as refused:
        sniff(head, name)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\plan.docx", "plan.docx"),
        ("\u202egnp.exe", "gnp.exe"),  # right-to-left override removed
        ("\x1b[31mred\x1b[0m.txt", "[31mred[0m.txt"),  # ESC removed
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("zero\u200bwidth.md", "zerowidth.md"),
        ("Cafe\u0301.txt", "Café.txt"),  # NFC
        ("  spaced   name .txt ", "spaced name .txt"),
        ("..", ""),
        ("", ""),
    ],
)
def test_display_names_are_clean(raw: str, shown: str) -> None:
    assert display_name(raw) == shown


def test_text_may_start_like_a_weak_signature() -> None:
    assert sniff(b"MZ-2000 service manual\n", "manual.txt") == "text"
    assert sniff(b"GIF89a is the format we export to.", "notes.md") == "markdown"


def test_long_names_keep_their_extension() -> None:
    shown = display_name("x" * 500 + ".pdf")
    assert len(shown) <= 200 and shown.endswith("….pdf")
