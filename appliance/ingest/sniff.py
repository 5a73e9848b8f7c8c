"""What a file is, from its first bytes and its name together (pure).

An upload is refused (415) when its extension is not one we parse, or when its
content is plainly something else: a `.pdf` that does not start like a PDF, a
`.docx` that is not a zip, a text file that holds NUL bytes or a known binary
signature (an executable renamed `.txt`).
"""

from __future__ import annotations

from pathlib import PurePath

HEAD_BYTES = 8192
KINDS = {
    ".txt": "text", ".text": "text", ".log": "text", ".md": "markdown", ".markdown": "markdown",
    ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx",
    ".xlsx": "xlsx", ".xlsm": "xlsx", ".csv": "csv", ".tsv": "tsv", ".pptx": "pptx",
    ".eml": "eml", ".msg": "msg", ".odt": "odt", ".ods": "ods", ".odp": "odp", ".rtf": "rtf",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".tif": "image", ".tiff": "image",
}  # fmt: skip
SUPPORTED_EXTENSIONS = tuple(sorted(KINDS))
ZIP_KINDS = frozenset({"docx", "xlsx", "pptx", "odt", "ods", "odp"})
TEXT_KINDS = frozenset({"text", "markdown", "html", "csv", "tsv", "eml", "rtf"})
_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_IMAGES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
# Signatures no text file starts with (non-ASCII bytes, or ASCII no prose begins with).
# Weaker ones ("MZ", "GIF8", "Rar!") could start a note: such binaries are caught by
# their NUL bytes instead.
_SIGNATURES = (
    (b"%PDF-", "a PDF"),
    (_ZIP, "a zip archive (DOCX, XLSX, JAR…)"),
    (b"\x7fELF", "an ELF executable"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Office (OLE) file"),
)


class Refused(Exception):
    """The file is not what we parse; the message says why (HTTP 415)."""


def _looks_like(head: bytes) -> str | None:
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    return None


def sniff(head: bytes, file_name: str) -> str:
    """The parser kind for a file starting with `head`, or `Refused`."""
    suffix = PurePath(file_name).suffix.lower()
    kind = KINDS.get(suffix)
    if kind is None:
        shown = suffix if suffix and len(suffix) <= 16 else "(none)" if not suffix else "(too long)"
        raise Refused(
            f"unsupported file type `{shown}`; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if not head.strip():
        raise Refused("the file is empty")
    found = _looks_like(head)
    if kind == "pdf":
        if b"%PDF-" not in head[:1024]:
            raise Refused(f"`{suffix}` but the content is {found or 'not a PDF'}")
    elif kind in ZIP_KINDS:
        if not head.startswith(_ZIP):
            raise Refused(
                f"`{suffix}` but the content is {found or f'not a {suffix[1:].upper()} (zip) file'}"
            )
    elif kind == "msg":
        if not head.startswith(_OLE):
            raise Refused(f"`{suffix}` but the content is {found or 'not an Outlook MSG file'}")
    elif kind == "image":
        if not head.startswith(_IMAGES):
            raise Refused(f"`{suffix}` but the content is {found or 'not a PNG/JPEG/TIFF image'}")
    elif kind == "rtf" and not head.lstrip().startswith(b"{\\rtf"):
        raise Refused(f"`{suffix}` but the content is {found or 'not RTF'}")
    elif found is not None:
        raise Refused(f"`{suffix}` but the content is {found}")
    elif b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Refused(f"`{suffix}` but the content is binary (NUL bytes), not text")
    return kind
