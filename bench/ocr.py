"""OCR of scanned pages: speed and accuracy, the appliance's reader vs RapidOCR as shipped.

Pages are generated: known text drawn at 200 dpi, saved as JPEG (what an office scanner
makes), then wrapped in a PDF with no text layer. The appliance reads them as a
scanned PDF is read at ingestion (`parse_file`, `ocr = "auto"`: detection, render,
binarise, one line per text line). The baseline is RapidOCR with its defaults (angle
classifier on, no binarisation) on the very same page images. Accuracy is the
character error rate (edit distance / reference length, whitespace collapsed).
"""

from __future__ import annotations

import io
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appliance.ingest.reader import ParseOptions, parse_file  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
A4_200DPI = (1654, 2339)
WORDS = (
    "contract service renewal invoice warranty model delivery payment terms notice "
    "period months customer supplier annual fee building access server backup storage "
    "network maintenance window March April Tampere Helsinki office report figure total "
    "the of and to in for with by at from on is are will must each per"
).split()


def sentences(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 9))]
        words.insert(rng.randint(0, len(words)), str(rng.randint(10, 9999)))
        out.append(" ".join(words).capitalize() + ".")
    return out


def page_image(lines: list[str], size: int) -> Any:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, size)
    image = Image.new("L", A4_200DPI, 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((140, 160 + int(size * 1.8) * i), line, fill=0, font=font)
    jpeg = io.BytesIO()  # a scanner's JPEG: ringing around every letter
    image.save(jpeg, "JPEG", quality=75)
    from PIL import Image as PILImage

    return PILImage.open(io.BytesIO(jpeg.getvalue())).convert("RGB")


def cer(reference: str, read: str) -> float:
    a, b = " ".join(reference.split()), " ".join(read.split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
        previous = current
    return previous[-1] / max(1, len(a))


def raw_rapidocr(images: list[Any]) -> tuple[list[str], float]:
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()  # as shipped: angle classifier, the library's thread defaults
    engine(np.asarray(images[0]))  # warm up, as the appliance's engine is warm below
    t0 = time.perf_counter()
    texts = []
    for image in images:
        results, _ = engine(np.asarray(image))
        texts.append(" ".join(str(r[1]) for r in results or []))
    return texts, time.perf_counter() - t0


def appliance(pdf: Path, warm: Path) -> tuple[list[str], float]:
    parse_file(warm, "warm.pdf", options=ParseOptions(ocr="auto"))  # engine load, once
    t0 = time.perf_counter()
    doc = parse_file(pdf, "scan.pdf", options=ParseOptions(ocr="auto"))
    elapsed = time.perf_counter() - t0
    by_page = {s.page: s.text for s in doc.sections}
    assert doc.ocr_pages == sorted(by_page), (doc.ocr_pages, sorted(by_page))
    return [by_page.get(n, "") for n in range(1, len(by_page) + 1)], elapsed


def main() -> None:
    t_start = time.monotonic()
    rng = random.Random(11)
    sets = {
        "letter (10 lines, 13 pt)": [sentences(rng, 10) for _ in range(4)],
        "dense (38 lines, 10 pt)": [sentences(rng, 38) for _ in range(2)],
    }
    sizes = {"letter (10 lines, 13 pt)": 36, "dense (38 lines, 10 pt)": 28}
    print("pages: text drawn at 200 dpi, JPEG q75, wrapped in a PDF with no text layer;")
    print("CER: character error rate (edit distance / reference characters)\n")
    print(f"{'pages':<26} {'reader':<22} {'pages/s':>8} {'CER':>7}")
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        warm = root / "warm.pdf"
        page_image(["Warm up"], 36).save(warm, "PDF", resolution=200.0)
        for title, pages in sets.items():
            images = [page_image(lines, sizes[title]) for lines in pages]
            pdf = root / "scan.pdf"
            images[0].save(pdf, "PDF", resolution=200.0, save_all=True, append_images=images[1:])
            references = ["\n".join(lines) for lines in pages]
            ours, t_ours = appliance(pdf, warm)
            theirs, t_theirs = raw_rapidocr(images)
            n = len(pages)
            rows = [
                ("appliance (parse_file)", ours, t_ours),
                ("RapidOCR defaults", theirs, t_theirs),
            ]
            rates = {}
            for name, texts, elapsed in rows:
                rate = sum(cer(r, t) for r, t in zip(references, texts, strict=True)) / n
                rates[name] = (n / elapsed, rate)
                print(f"{title:<26} {name:<22} {n / elapsed:>8.2f} {rate:>7.3f}")
            (p_ours, c_ours), (p_raw, c_raw) = rates.values()
            errors = f"{c_raw / c_ours:.0f}x fewer" if c_ours > 0 else "none left"
            print(f"{'':<26} {'ratio':<22} {p_ours / p_raw:>7.2f}x  errors: {errors}\n")
    print("The appliance's reader includes PDF detection and rendering (pdfium, scale 2")
    print("capped at 2.1 MP); the baseline gets the decoded page image for free.")
    print(f"\n(ocr.py: {time.monotonic() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
