"""Text from pixels: scanned PDF pages and images, read by RapidOCR.

RapidOCR (PP-OCRv4 detection and recognition, ONNX) ships its models inside its wheel
and never touches the network. The engine is created once per process (the parser
sandbox keeps one child between files) and runs on at most two onnxruntime threads.

`on_page(n)` is called before each page is rendered and read: the caller's per-page
watchdog. Page numbers are 1-based everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from appliance.domain.types import Section
from appliance.ingest.formats.base import Limits, ParsedDocument, ParseError, clean_text

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

MAX_IMAGE_PIXELS = 50_000_000  # an image larger than this is refused before decoding
MAX_RENDER_PIXELS = 40_000_000  # a PDF page is rendered at a lower scale past this
MIN_CONFIDENCE = 0.5
OCR_THREADS = 2
_ENGINE_MAX_SIDE = 2000  # RapidOCR shrinks larger images to this side before detection
# Detection memory grows with the pixels read: ~0.5 GB for an A4 page at scale 2 (2 MP),
# ~0.9 GB for 4 MP; larger images are shrunk to this many pixels first.
MAX_OCR_PIXELS = 2_100_000
_SCAN_MAX_CHARS = 30  # a page with fewer text characters than this may be a scan
_IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "TIFF": "image/tiff"}

PageCallback = Callable[[int], None]


@functools.cache
def _engine() -> Any:
    """The process-wide RapidOCR engine (loads three ONNX models, ~0.5 s)."""
    rapidocr = importlib.import_module("rapidocr_onnxruntime")
    threads = max(1, min(OCR_THREADS, os.cpu_count() or 1))
    # no per-line angle classifier: on upright pages it turns whole lines upside down
    # (a line in ten became garbage on a test page); a page scanned upside down stays unread
    return rapidocr.RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1, use_cls=False)


def _pdfium() -> tuple[Any, Any]:
    return importlib.import_module("pypdfium2"), importlib.import_module("pypdfium2.raw")


@contextlib.contextmanager
def _readable_pdf(data: bytes) -> Iterator[Any]:
    """The PDF open in pdfium, closed after; pdfium's errors, in opening it or in reading
    it, become `ParseError`."""
    pdfium, _ = _pdfium()
    try:
        pdf = pdfium.PdfDocument(data)
        try:
            yield pdf
        finally:
            pdf.close()
    except pdfium.PdfiumError as exc:
        raise ParseError(f"not a readable PDF ({exc})") from exc


def _to_gray(img: Image.Image) -> Image.Image:
    """Grayscale, transparent pixels on white (text drawn on a transparent PNG stays)."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        img = background
    return img.convert("L") if img.mode != "L" else img


def _binarize(gray: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Ink black, paper white (Otsu's threshold).

    The grey of JPEG ringing between letters otherwise reads as ink, and the recogniser
    runs words together: on a JPEG-compressed test scan the character error rate fell
    from 0.13 to 0.003. A page that is mostly dark (a photo, light text on dark) or has
    no contrast (blank) is left as it is.
    """
    cv2 = importlib.import_module("cv2")
    threshold, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    dark = gray <= threshold
    if not dark.any() or dark.all() or dark.mean() > 0.5:
        return gray
    if float(gray[~dark].mean()) - float(gray[dark].mean()) < 60:
        return gray
    return binary  # type: ignore[no-any-return]


def _lines(results: list[Any]) -> list[str]:
    """OCR boxes as reading lines: top to bottom, a line's boxes left to right."""
    boxes: list[tuple[float, float, float, str]] = []  # top, bottom, left, text
    for points, text, score in results:
        if float(score) < MIN_CONFIDENCE or not str(text).strip():
            continue
        ys = [float(p[1]) for p in points]
        boxes.append((min(ys), max(ys), min(float(p[0]) for p in points), str(text).strip()))
    boxes.sort(key=lambda b: (b[0] + b[1]) / 2)
    lines: list[list[tuple[float, float, float, str]]] = []
    for box in boxes:
        center = (box[0] + box[1]) / 2
        if lines:
            line = lines[-1]
            top = sum(b[0] for b in line) / len(line)
            bottom = sum(b[1] for b in line) / len(line)
            if top <= center <= bottom:  # its middle lies within the line's band
                line.append(box)
                continue
        lines.append([box])
    return [" ".join(b[3] for b in sorted(line, key=lambda b: b[2])) for line in lines]


def ocr_image_array(img: Image.Image | np.ndarray[Any, Any]) -> str:
    """The text of a PIL image or uint8 array, a line per text line; '' when none is read."""
    import numpy as np
    from PIL import Image

    image = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img))
    image = _to_gray(image)
    width, height = image.size
    if width == 0 or height == 0:
        return ""
    shrink = min(_ENGINE_MAX_SIDE / max(width, height), (MAX_OCR_PIXELS / (width * height)) ** 0.5)
    if shrink < 1:  # what the engine would do anyway past 2000 px, with less memory
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    try:
        results, _elapsed = _engine()(_binarize(np.asarray(image)))
    except Exception as exc:  # onnxruntime out of memory (RLIMIT_AS), a model error
        if isinstance(exc, MemoryError) or "bad_alloc" in str(exc):
            raise ParseError("OCR ran out of memory (the parser's address-space limit)") from exc
        reason = (str(exc).strip().splitlines() or [""])[-1][-200:]
        raise ParseError(f"OCR failed ({type(exc).__name__}: {reason})") from exc
    return clean_text("\n".join(_lines(results or [])))


def _refuse_large(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise ParseError(
            f"the image is {width}x{height} pixels: more than "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels"
        )


def parse_image(data: bytes, limits: Limits, on_page: PageCallback | None = None) -> ParsedDocument:
    """OCR a PNG, JPEG or TIFF image (each TIFF frame a page)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        content_type = _IMAGE_TYPES.get(image.format or "")
        if content_type is None:
            raise ParseError(f"unsupported image format {image.format} (PNG, JPEG, TIFF)")
        _refuse_large(image.size)
        if image.format in ("JPEG", "MPO"):  # decode at a fraction of the size (DCT scaling)
            k = min(1.0, (MAX_OCR_PIXELS / (image.size[0] * image.size[1])) ** 0.5)
            image.draft("L", (int(image.size[0] * k), int(image.size[1] * k)))
        # a camera's MPO holds previews or depth maps after the photo: TIFF frames only
        frames = int(getattr(image, "n_frames", 1)) if image.format == "TIFF" else 1
        if frames > limits.max_pages:
            raise ParseError(
                f"the image has {frames} frames, more than ingest.max_pages={limits.max_pages}"
            )
        sections: list[Section] = []
        for number in range(1, frames + 1):
            image.seek(number - 1)
            _refuse_large(image.size)
            if on_page is not None:
                on_page(number)
            frame = ImageOps.exif_transpose(image) if number == 1 else image
            text = ocr_image_array(_to_gray(frame))
            if text:
                sections.append(Section(text, page=number))
    except Image.DecompressionBombError as exc:
        limit = MAX_IMAGE_PIXELS // 1_000_000
        raise ParseError(f"the image is more than {limit} megapixels") from exc
    except UnidentifiedImageError as exc:
        raise ParseError("not a readable image (not PNG, JPEG or TIFF, or damaged)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ParseError(f"not a readable image ({exc})") from exc
    if not sections:
        raise ParseError("OCR found no text in the image")
    return ParsedDocument(
        content_type, sections, pages=frames, ocr_pages=list(range(1, frames + 1))
    )


def _image_share(page: Any, pdfium_c: Any) -> float:
    """The share of the page's area covered by images (overlapping ones summed, up to 1)."""
    width, height = page.get_size()
    area = float(width) * float(height)
    if area <= 0:
        return 0.0
    covered = 0.0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4):
        left, bottom, right, top = obj.get_bounds()
        w = min(float(right), width) - max(float(left), 0.0)
        h = min(float(top), height) - max(float(bottom), 0.0)
        if w > 0 and h > 0:
            covered += w * h
    return min(covered / area, 1.0)


def _has_objects(page: Any) -> bool:
    return any(True for _ in page.get_objects(max_depth=1))


def scanned_pages(data: bytes, page_texts: dict[int, str]) -> list[int]:
    """The pages (1-based) of a PDF that need OCR.

    `page_texts` holds the text extracted by page number (a page missing counts as no
    text). A page is a scan when it has no text but draws something, or under 30
    non-space characters while images cover more than half of it (a scanner's stamp
    or a bar code over a page image). Blank pages are left out.
    """
    _, pdfium_c = _pdfium()
    scans: list[int] = []
    with _readable_pdf(data) as pdf:
        for index in range(len(pdf)):
            number = index + 1
            chars = len(re.sub(r"\s+", "", page_texts.get(number, "")))
            if chars >= _SCAN_MAX_CHARS:
                continue
            page = pdf[index]
            try:
                if (chars == 0 and _has_objects(page)) or _image_share(page, pdfium_c) > 0.5:
                    scans.append(number)
            finally:
                page.close()
    return scans


def ocr_pdf_pages(
    data: bytes,
    pages: list[int],
    on_page: PageCallback | None = None,
    *,
    scale: float = 2.0,
) -> dict[int, str]:
    """Render the listed pages (1-based) and OCR them: text by page ('' where none).

    A page is rendered at `scale` (2.0 = 144 dpi) unless that would take more than
    40 megapixels; then at the scale that fits.
    """
    texts: dict[int, str] = {}
    with _readable_pdf(data) as pdf:
        count = len(pdf)
        for number in pages:
            if not 1 <= number <= count:
                raise ValueError(f"page {number} is not in the PDF's 1..{count}")
            if on_page is not None:
                on_page(number)
            page = pdf[number - 1]
            try:
                width, height = page.get_size()
                area = max(float(width) * float(height), 1.0)
                page_scale = min(scale, 0.999 * (MAX_RENDER_PIXELS / area) ** 0.5)
                bitmap = page.render(scale=page_scale, grayscale=True)
                try:  # the image shares the bitmap's buffer: read it before closing
                    texts[number] = ocr_image_array(bitmap.to_pil())
                finally:
                    bitmap.close()
            finally:
                page.close()
    return texts
