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
