"""The `[ingest]` section: what one document may cost before it is refused."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from appliance.config.base import Base


class IngestSettings(Base, frozen=True):
    parse_memory_mb: Annotated[
        int,
        Meta(
            ge=256,
            le=65536,
            description=(
                "Address space of the parser subprocess (RLIMIT_AS), in MiB: a file whose "
                "parsing needs more fails, the server's own memory is untouched. OCR needs "
                "about 1300 (ONNX Runtime reserves address space; it uses about 550 MiB)."
            ),
        ),
    ] = 2048
    parse_cpu_s: Annotated[
        int,
        Meta(ge=1, le=3600, description="CPU seconds one file's parsing may use (RLIMIT_CPU)."),
    ] = 60
    parse_timeout_s: Annotated[
        float,
        Meta(ge=1, le=7200, description="Wall-clock seconds one file's parsing may take."),
    ] = 120.0
    max_pages: Annotated[
        int, Meta(ge=1, description="Most pages a PDF (or slides a presentation) may have.")
    ] = 5000
    max_unzipped_mb: Annotated[
        int,
        Meta(
            ge=1,
            description=(
                "Most MiB an Office or OpenDocument file (a zip) may hold once decompressed, "
                "checked from the zip directory before any member is read; also the most a "
                "mail's attachments may hold together."
            ),
        ),
    ] = 200
    max_text_mb: Annotated[
        int, Meta(ge=1, description="Most MiB of text one document may yield.")
    ] = 50
    max_chunks: Annotated[
        int, Meta(ge=1, description="Most chunks one document may be split into.")
    ] = 20000
    max_cells: Annotated[
        int,
        Meta(ge=1, description="Most spreadsheet cells (all sheets together) one file may hold."),
    ] = 2_000_000
    max_attachments: Annotated[
        int, Meta(ge=0, description="Most attachments one mail may carry.")
    ] = 50
    max_mime_depth: Annotated[
        int, Meta(ge=1, le=100, description="Deepest nesting of a mail's MIME parts.")
    ] = 8
    ocr: Annotated[
        Literal["auto", "off", "force"],
        Meta(
            description=(
                "OCR (RapidOCR, offline) of scanned PDF pages and of images: 'auto' reads the "
                "pages with no text layer (or a few characters over a large image), 'force' "
                "every PDF page, 'off' none (images are then refused)."
            )
        ),
    ] = "auto"
    ocr_page_timeout_s: Annotated[
        float,
        Meta(
            ge=1,
            le=3600,
            description=(
                "Wall-clock (and CPU) seconds OCR of one page may take; each OCR'd page gets "
                "its own allowance on top of parse_timeout_s."
            ),
        ),
    ] = 60.0
