"""Mail (EML, MSG) and OCR (images, scanned PDF pages) parsers."""

from __future__ import annotations

import io
import struct
import time
import zlib
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.ingest.formats import mail, ocr
from appliance.ingest.formats.base import Limits, ParseError
from appliance.ingest.formats.pdf import parse_pdf
from tests.msg_writer import MsgAttachment, MsgSpec, build_msg

FACT = "The depot in Tampere holds 42 forklifts."
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PDF_ATTACHMENT = b"%PDF-1.4\n% not really a PDF, just bytes to carry\n%%EOF\n"


# --- EML ---------------------------------------------------------------------------------


def _audit_mail() -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "Quarterly depot audit"
    msg["From"] = "Ada Lovelace <ada@example.com>"
    msg["To"] = "Grace Hopper <grace@example.com>, ops@example.com"
    msg["Date"] = "Tue, 05 Mar 2024 09:30:00 +0100"
    msg.set_content(FACT + "\nSee the attached report.\n")
    msg.add_alternative(f"<html><body><p>{FACT}</p></body></html>", subtype="html")
    msg.add_attachment(
        PDF_ATTACHMENT, maintype="application", subtype="pdf", filename="../../etc/audit.pdf"
    )
    msg.add_attachment(b"first", maintype="text", subtype="plain", filename="notes.txt")
    msg.add_attachment(b"second", maintype="text", subtype="plain", filename="notes.txt")
    return msg


def test_eml_metadata_body_and_attachments(tmp_path: Path) -> None:
    doc = mail.parse_eml(_audit_mail().as_bytes(), Limits(), tmp_path)

    assert doc.content_type == "message/rfc822"
    assert doc.metadata == {
        "title": "Quarterly depot audit",
        "from": "Ada Lovelace <ada@example.com>",
        "to": "Grace Hopper <grace@example.com>, ops@example.com",
        "date": "2024-03-05T09:30:00+01:00",
        "author": "Ada Lovelace",
        "created": "2024-03-05T09:30:00+01:00",
    }
    [section] = doc.sections
    assert section.heading == "Quarterly depot audit"
    assert section.location == "mail: Quarterly depot audit"
    assert section.text.startswith(
        "From: Ada Lovelace <ada@example.com>\nTo: Grace Hopper <grace@example.com>, "
        "ops@example.com\nDate: 2024-03-05T09:30:00+01:00\nSubject: Quarterly depot audit\n\n"
    )
    assert section.text.count(FACT) == 1  # the plain part, not the HTML alternative too
    assert doc.attachments == ["audit.pdf", "notes.txt", "notes (2).txt"]
    assert (tmp_path / "audit.pdf").read_bytes() == PDF_ATTACHMENT
    assert (tmp_path / "notes.txt").read_bytes() == b"first"
    assert (tmp_path / "notes (2).txt").read_bytes() == b"second"


def test_eml_without_out_dir_writes_nothing() -> None:
    doc = mail.parse_eml(_audit_mail().as_bytes(), Limits(), None)
    assert doc.attachments == []
    assert FACT in doc.sections[0].text


def test_eml_html_only_and_no_subject() -> None:
    msg = EmailMessage()
    msg["From"] = "ops@example.com"
    msg.set_content(
        f"<html><head><style>p {{}}</style></head><body><h1>Audit</h1><p>{FACT}</p></body></html>",
        subtype="html",
    )
    doc = mail.parse_eml(msg.as_bytes(), Limits(), None)
    [section] = doc.sections
    assert section.heading is None and section.location == "mail"
    assert FACT in section.text and "Audit" in section.text
    assert "<" not in section.text
    assert doc.metadata["author"] == "ops@example.com"
    assert "title" not in doc.metadata


def test_eml_attached_mail_is_written_as_eml(tmp_path: Path) -> None:
    inner = EmailMessage()
    inner["Subject"] = "Forklift count"
    inner.set_content("Inner fact: 17 pallets.\n")
    outer = EmailMessage()
    outer["Subject"] = "Fwd: Forklift count"
    outer.set_content("See below.\n")
    outer.add_attachment(inner)

    doc = mail.parse_eml(outer.as_bytes(), Limits(), tmp_path)
    assert doc.attachments == ["Forklift count.eml"]
    again = mail.parse_eml((tmp_path / "Forklift count.eml").read_bytes(), Limits(), None)
    assert "17 pallets" in again.sections[0].text
    assert "17 pallets" not in doc.sections[0].text


def test_unparsable_date_is_kept_raw() -> None:
    raw = b"Subject: x\r\nDate: the day after tomorrow\r\n\r\nbody\r\n"
    assert mail.parse_eml(raw, Limits(), None).metadata["date"] == "the day after tomorrow"


def _nested(levels: int) -> bytes:
    head = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(levels)
    )
    tail = "".join(f"\n--b{i}--\n" for i in reversed(range(levels)))
    return (
        "From: a@example.com\nSubject: deep\nMIME-Version: 1.0\n"
        + head
        + "Content-Type: text/plain\n\nhello\n"
        + tail
    ).encode()


def test_eml_nesting_within_the_limit_is_read() -> None:
    doc = mail.parse_eml(_nested(3), Limits(max_mime_depth=8), None)
    assert "hello" in doc.sections[0].text


def test_eml_nested_past_the_limit_is_refused() -> None:
    with pytest.raises(ParseError, match=r"ingest\.max_mime_depth=8"):
        mail.parse_eml(_nested(200), Limits(max_mime_depth=8), None)


def test_eml_hostile_nesting_fails_cleanly_and_fast() -> None:
    start = time.process_time()
    with pytest.raises(ParseError, match=r"ingest\.max_mime_depth"):
        mail.parse_eml(_nested(10_000), Limits(), None)
    # "fast": refused at the limit, not after walking all 10,000 levels. The refusal takes
    # ~1 ms of CPU; 10 s of this process's CPU (which a CPU hog beside the suite does not
    # take) is a hang guard for a parser that recursed through every level
    assert time.process_time() - start < 10


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_eml_nesting_check_reads_any_line_ending(newline: bytes) -> None:
    with pytest.raises(ParseError, match=r"ingest\.max_mime_depth=8"):
        mail.parse_eml(_nested(5000).replace(b"\n", newline), Limits(), None)
    doc = mail.parse_eml(_nested(4).replace(b"\n", newline), Limits(), None)
    assert "hello" in doc.sections[0].text


def test_eml_attached_mails_nested_past_the_limit_are_refused() -> None:
    inner = b"Subject: leaf\n\nhello\n"
    for i in range(20):
        inner = b"Subject: level %d\nContent-Type: message/rfc822\n\n" % i + inner
    with pytest.raises(ParseError, match=r"ingest\.max_mime_depth=8"):
        mail.parse_eml(inner, Limits(), None)


def test_eml_too_many_attachments(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["Subject"] = "many"
    msg.set_content("body")
    for i in range(5):
        msg.add_attachment(b"x", maintype="text", subtype="plain", filename=f"{i}.txt")
    with pytest.raises(ParseError, match=r"ingest\.max_attachments=3"):
        mail.parse_eml(msg.as_bytes(), Limits(max_attachments=3), tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing written when refused


def test_eml_attachments_too_large() -> None:
    msg = EmailMessage()
    msg.set_content("body")
    msg.add_attachment(bytes(2 * 1024 * 1024), maintype="application", subtype="octet-stream")
    with pytest.raises(ParseError, match=r"ingest\.max_unzipped_mb=1"):
        mail.parse_eml(msg.as_bytes(), Limits(max_unzipped_mb=1), None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\evil\x00name.pdf", "evil_name.pdf"),
        ("..", "attachment"),
        ("", "attachment"),
        (" .hidden.docx", "hidden.docx"),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert mail.safe_name(name) == expected


def test_safe_name_shortens_but_keeps_the_extension() -> None:
    name = mail.safe_name("ä" * 300 + ".xlsx")
    assert name.endswith(".xlsx") and len(name.encode()) <= 180


# --- MSG ---------------------------------------------------------------------------------


def _audit_msg() -> bytes:
    inner = MsgSpec(subject="Forklift count", body="Inner fact: 17 pallets.")
    return build_msg(
        MsgSpec(
            subject="Quarterly depot audit",
            body=FACT + "\r\nSee the attached report.",
            sent=datetime(2024, 3, 5, 8, 30, tzinfo=UTC),
            attachments=[
                MsgAttachment("audit.pdf", PDF_ATTACHMENT),
                MsgAttachment("Forklift count.msg", embedded=inner),
            ],
        )
    )


def test_msg_metadata_body_and_attachments(tmp_path: Path) -> None:
    doc = mail.parse_msg(_audit_msg(), Limits(), tmp_path)

    assert doc.content_type == "application/vnd.ms-outlook"
    assert doc.metadata["title"] == "Quarterly depot audit"
    assert doc.metadata["from"] == "Ada Lovelace <ada@example.com>"
    assert doc.metadata["to"] == "Grace Hopper <grace@example.com>"
    assert doc.metadata["author"] == "Ada Lovelace"
    assert doc.metadata["date"].startswith("2024-03-05T08:30:00")
    assert doc.metadata["created"] == doc.metadata["date"]
    [section] = doc.sections
    assert section.heading == "Quarterly depot audit"
    assert section.location == "mail: Quarterly depot audit"
    assert section.text.startswith("From: Ada Lovelace <ada@example.com>\nTo: Grace Hopper")
    assert FACT in section.text
    assert doc.attachments == ["audit.pdf", "Forklift count.msg"]
    assert (tmp_path / "audit.pdf").read_bytes() == PDF_ATTACHMENT
    inner = mail.parse_msg((tmp_path / "Forklift count.msg").read_bytes(), Limits(), None)
    assert inner.metadata["title"] == "Forklift count"
    assert "17 pallets" in inner.sections[0].text


def test_msg_too_many_attachments() -> None:
    spec = MsgSpec(
        subject="many",
        body="b",
        attachments=[MsgAttachment(f"{i}.txt", b"x") for i in range(4)],
    )
    with pytest.raises(ParseError, match=r"ingest\.max_attachments=3"):
        mail.parse_msg(build_msg(spec), Limits(max_attachments=3), None)


def _nested_msg(levels: int) -> bytes:
    spec = MsgSpec(subject="leaf", body="leaf body")
    for i in range(levels):
        spec = MsgSpec(f"level {i}", "b", attachments=[MsgAttachment(f"{i}.msg", embedded=spec)])
    return build_msg(spec)


def test_msg_nested_past_the_limit_is_refused() -> None:
    assert mail.parse_msg(_nested_msg(2), Limits(max_mime_depth=4), None).sections
    with pytest.raises(ParseError, match=r"ingest\.max_mime_depth=4"):
        mail.parse_msg(_nested_msg(3), Limits(max_mime_depth=4), None)
    start = time.process_time()
    with pytest.raises(ParseError, match=r"ingest\.max_mime_depth=8"):
        mail.parse_msg(_nested_msg(60), Limits(), None)
    # the refusal takes ~0.15 s of CPU: 10 s of this process's CPU is a hang guard, as above
    assert time.process_time() - start < 10


@pytest.mark.parametrize("data", [b"hello", b"\xd0\xcf\x11\xe0" + bytes(4000), bytes(5000)])
def test_msg_unreadable(data: bytes) -> None:
    with pytest.raises(ParseError, match="not a readable Outlook MSG file"):
        mail.parse_msg(data, Limits(), None)


# --- OCR ---------------------------------------------------------------------------------


def _text_image(lines: list[str], size: tuple[int, int] = (1100, 400)) -> Image.Image:
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 30)
    for i, line in enumerate(lines):
        draw.text((40, 40 + i * 56), line, font=font, fill=0)
    return img


def _scanned_pdf(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PDF", resolution=150)
    return out.getvalue()


def _fpdf(text: str, *, full_page_image: Image.Image | None = None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_page()
    if full_page_image is not None:
        pdf.image(full_page_image, x=0, y=0, w=210, h=297)
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def test_lines_are_ordered_and_low_confidence_dropped() -> None:
    def box(x: float, y: float, w: float = 100, h: float = 30) -> list[list[float]]:
        return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]

    results = [
        [box(300, 102), "world", 0.9],
        [box(10, 10), "Title", 0.99],
        [box(10, 100), "hello", 0.95],
        [box(10, 200), "noise", 0.3],
        [box(10, 190), "last", 0.8],
    ]
    assert ocr._lines(results) == ["Title", "hello world", "last"]


def test_parse_png_image() -> None:
    buf = io.BytesIO()
    _text_image([FACT, "Inspected by the audit team."]).convert("RGBA").save(buf, "PNG")
    pages: list[int] = []
    doc = ocr.parse_image(buf.getvalue(), Limits(), pages.append)
    assert doc.content_type == "image/png"
    assert doc.pages == 1 and doc.ocr_pages == [1] and pages == [1]
    [section] = doc.sections
    assert section.page == 1 and section.location is None
    assert "tampere" in section.text.lower() and "42" in section.text
    assert "\n" in section.text  # one line per text line


def test_jpeg_turned_by_its_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise (unreadable as stored)
    buf = io.BytesIO()
    _text_image([FACT], (1100, 200)).rotate(90, expand=True).save(buf, "JPEG", exif=exif)
    doc = ocr.parse_image(buf.getvalue(), Limits())
    assert doc.content_type == "image/jpeg"
    assert "tampere" in doc.sections[0].text.lower()


def test_tiff_frames_are_pages_and_limited() -> None:
    frames = [_text_image(["Page one of the scan"]), _text_image(["Second page, Tampere"])]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(ParseError, match=r"ingest\.max_pages=1"):
        ocr.parse_image(buf.getvalue(), Limits(max_pages=1))
    doc = ocr.parse_image(buf.getvalue(), Limits())
    assert doc.content_type == "image/tiff" and doc.pages == 2 and doc.ocr_pages == [1, 2]
    assert [s.page for s in doc.sections] == [1, 2]
    assert "tampere" in doc.sections[1].text.lower()


def test_huge_image_refused_before_decoding() -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    for side in (8_000, 20_000):  # 64 and 400 megapixels; Pillow itself refuses the second
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
        with pytest.raises(ParseError, match="more than 50 megapixels"):
            ocr.parse_image(png, Limits())


def test_other_and_broken_images_are_refused() -> None:
    gif = io.BytesIO()
    _text_image(["gif"]).save(gif, "GIF")
    with pytest.raises(ParseError, match="unsupported image format GIF"):
        ocr.parse_image(gif.getvalue(), Limits())
    with pytest.raises(ParseError, match="not a readable image"):
        ocr.parse_image(b"\x89PNG\r\n\x1a\n" + bytes(50), Limits())


def test_scanned_pdf_is_flagged_and_read() -> None:
    data = _scanned_pdf(_text_image([FACT, "Inspection passed without remarks."], (1240, 600)))
    with pytest.raises(ParseError, match="no extractable text"):
        parse_pdf(data, Limits())
    assert ocr.scanned_pages(data, {}) == [1]
    pages: list[int] = []
    texts = ocr.ocr_pdf_pages(data, [1], pages.append)
    assert pages == [1]
    assert "tampere" in texts[1].lower() and "42" in texts[1]
    assert len(texts[1].split()) >= 10  # words stay apart (JPEG noise, binarised away)


def test_text_pdf_is_not_flagged() -> None:
    data = _fpdf("The Tampere depot report. " * 20)
    texts = {s.page or 0: s.text for s in parse_pdf(data, Limits()).sections}
    assert ocr.scanned_pages(data, texts) == []


def test_page_image_under_a_short_stamp_is_flagged() -> None:
    data = _fpdf("p. 1", full_page_image=_text_image([FACT], (620, 877)))
    texts = {s.page or 0: s.text for s in parse_pdf(data, Limits()).sections}
    assert texts == {1: "p. 1"}
    assert ocr.scanned_pages(data, texts) == [1]


def test_huge_page_is_rendered_within_the_pixel_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from fpdf import FPDF

    pdf = FPDF(format=(5000, 5000))  # mm: ~14,170 pt a side, 800 megapixels at scale 2
    pdf.add_page()
    pdf.set_font("helvetica", size=900)
    pdf.text(200, 2500, "Tampere 42")
    data = bytes(pdf.output())
    rendered: list[tuple[int, int]] = []
    original = ocr.ocr_image_array

    def spy(img: Image.Image) -> str:
        rendered.append(img.size)
        return original(img)

    monkeypatch.setattr(ocr, "ocr_image_array", spy)
    text = ocr.ocr_pdf_pages(data, [1])[1]
    [(width, height)] = rendered
    assert width * height <= ocr.MAX_RENDER_PIXELS
    assert "tampere" in text.lower()


def test_binarize_leaves_dark_and_blank_images_alone() -> None:
    import numpy as np

    dark = np.full((100, 100), 30, dtype=np.uint8)
    dark[40:60, 10:90] = 220  # light text on a dark photo
    assert ocr._binarize(dark) is dark
    blank = np.full((100, 100), 250, dtype=np.uint8)
    blank[50, 50] = 240
    assert ocr._binarize(blank) is blank
    page = np.full((100, 100), 235, dtype=np.uint8)
    page[40:60, 10:90] = 40
    assert set(np.unique(ocr._binarize(page)).tolist()) == {0, 255}
