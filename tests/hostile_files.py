"""Generators of hostile files for the sandbox and upload tests (written to disk)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

MiB = 1024 * 1024

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>'
)

RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.'
    'org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats'
    '.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)


def docx_bomb(path: Path, unzipped_mib: int = 1024) -> Path:
    """A DOCX whose document.xml inflates to `unzipped_mib` MiB (about 1 MiB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        zf.writestr("_rels/.rels", RELS)
        with zf.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(b'<?xml version="1.0"?><w:document xmlns:w="x"><w:body><w:p><w:t>')
            block = b" " * MiB
            for _ in range(unzipped_mib):
                member.write(block)
            member.write(b"</w:t></w:p></w:body></w:document>")
    return path


def nested_html(path: Path, depth: int = 80_000) -> Path:
    path.write_text("<html><body>" + "<div>" * depth + "deep" + "</div>" * depth + "</body></html>")
    return path


def many_pages_pdf(path: Path, pages: int = 100_000) -> Path:
    """A valid PDF of `pages` empty pages, with a correct cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets: list[int] = []

    def obj(number: int, body: bytes) -> None:
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")

    first_page = 3
    kids = " ".join(f"{first_page + i} 0 R" for i in range(pages)).encode()
    obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    obj(2, b"<< /Type /Pages /Count " + str(pages).encode() + b" /Kids [" + kids + b"] >>")
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"
    for i in range(pages):
        obj(first_page + i, page)
    xref = out.tell()
    out.write(f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode())
    out.write(b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets))
    out.write(
        f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(out.getvalue())
    return path


def big_text(path: Path, mib: int) -> Path:
    line = b"The quarterly report lists every server room and its cooling budget.\n"
    with path.open("wb") as fh:
        for _ in range(mib * MiB // len(line) + 1):
            fh.write(line)
    return path


def truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def xlsx_shared_strings_bomb(path: Path, strings: int = 3_000_000) -> Path:
    """A small XLSX whose shared-strings table lists `strings` entries (tens of MiB once
    decompressed, a few hundred KiB on disk): reading it whole would cost gigabytes."""
    from openpyxl import Workbook

    Workbook().save(path)
    with zipfile.ZipFile(path) as src:
        parts = {name: src.read(name) for name in src.namelist()}
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    types = parts["[Content_Types].xml"].decode()
    parts["[Content_Types].xml"] = types.replace(
        "</Types>",
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxml'
        'formats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
    ).encode()
    rels = parts["xl/_rels/workbook.xml.rels"].decode()
    parts["xl/_rels/workbook.xml.rels"] = rels.replace(
        "</Relationships>",
        '<Relationship Id="rIdSS" Type="http://schemas.openxmlformats.org/officeDocument/'
        '2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
    ).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, body in parts.items():
            zf.writestr(name, body)
        with zf.open("xl/sharedStrings.xml", "w", force_zip64=True) as member:
            member.write(
                f'<?xml version="1.0"?><sst xmlns="{ns}" count="{strings}" '
                f'uniqueCount="{strings}">'.encode()
            )
            chunk = b"<si><t>spam</t></si>" * 10_000
            for _ in range(strings // 10_000):
                member.write(chunk)
            member.write(b"</sst>")
    return path


def pptx_many_slides(path: Path, slides: int = 6000) -> Path:
    """A valid PPTX of `slides` slides: one slide made by python-pptx, cloned."""
    import re

    from pptx import Presentation

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "Slide"
    prs.save(str(path))
    with zipfile.ZipFile(path) as src:
        parts = {name: src.read(name) for name in src.namelist()}
    body, rels = parts.pop("ppt/slides/slide1.xml"), parts.pop("ppt/slides/_rels/slide1.xml.rels")
    types = re.sub(r'<Override PartName="/ppt/slides/slide1.xml"[^>]*/>', "",
                   parts["[Content_Types].xml"].decode())  # fmt: skip
    kind = "application/vnd.openxmlformats-officedocument.presentationml.slide+xml"
    overrides = "".join(
        f'<Override PartName="/ppt/slides/slide{i}.xml" ContentType="{kind}"/>'
        for i in range(1, slides + 1)
    )
    parts["[Content_Types].xml"] = types.replace("</Types>", overrides + "</Types>").encode()
    pres_rels = parts["ppt/_rels/presentation.xml.rels"].decode()
    pres_rels = re.sub(r'<Relationship [^>]*Target="slides/slide1.xml"/>', "", pres_rels)
    slide_type = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide"
    pres_rels = pres_rels.replace(
        "</Relationships>",
        "".join(
            f'<Relationship Id="rIdS{i}" Type="{slide_type}" Target="slides/slide{i}.xml"/>'
            for i in range(1, slides + 1)
        )
        + "</Relationships>",
    )
    parts["ppt/_rels/presentation.xml.rels"] = pres_rels.encode()
    pres = parts["ppt/presentation.xml"].decode()
    ids = "".join(f'<p:sldId id="{256 + i}" r:id="rIdS{i}"/>' for i in range(1, slides + 1))
    pres = re.sub(r"<p:sldIdLst>.*?</p:sldIdLst>", f"<p:sldIdLst>{ids}</p:sldIdLst>", pres)
    parts["ppt/presentation.xml"] = pres.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
        for i in range(1, slides + 1):
            zf.writestr(f"ppt/slides/slide{i}.xml", body)
            zf.writestr(f"ppt/slides/_rels/slide{i}.xml.rels", rels)
    return path


def nested_mime_mail(path: Path, depth: int = 10_000) -> Path:
    """A mail whose MIME parts nest `depth` levels deep."""
    lines = ["From: a@example.com", "To: b@example.com", "Subject: nested", "MIME-Version: 1.0"]
    for level in range(depth):
        lines += [f'Content-Type: multipart/mixed; boundary="b{level}"', "", f"--b{level}"]
    lines += ["Content-Type: text/plain", "", "deep inside"]
    for level in reversed(range(depth)):
        lines.append(f"--b{level}--")
    path.write_text("\r\n".join(lines) + "\r\n")
    return path
