"""Real files of every format beyond the first five, each holding a known fact, written
by the libraries that read them (openpyxl, python-pptx, odfpy, the stdlib's email, Pillow;
MSG by extract-msg's compound-file writer, `tests/msg_writer.py`).
`scanned_pdf` and `scan_png` are text rendered to an image: no text layer at all."""

from __future__ import annotations

import csv
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FILLER = "Teams meet on Mondays to plan the week. Visitors sign in at the front desk."

# format -> (file name, fact, a question whose answer is the fact)
FACTS: dict[str, tuple[str, str, str]] = {
    "xlsx": ("depots.xlsx", "Kuopio", "Who manages the warehouse in Kuopio?"),
    "csv": ("parts.csv", "ZX-4411", "What does part ZX-4411 cost and who supplies it?"),
    "tsv": ("rooms.tsv", "Aurora", "How many seats does the Aurora meeting room have?"),
    "pptx": ("backup-plan.pptx", "Oulu", "Where are the backup tapes rotated to?"),
    "eml": ("audit.eml", "Joensuu", "How many pallets were missing at the Joensuu depot?"),
    "msg": ("fire-drill.msg", "Kotka", "When is the fire drill at the Kotka warehouse?"),
    "odt": ("visitors.odt", "Vaasa", "What badge must visitors wear in the Vaasa office?"),
    "ods": ("budget.ods", "Lahti", "What is the cooling budget of the Lahti site?"),
    "odp": ("hours.odp", "Rovaniemi", "When does the Rovaniemi office close on Fridays?"),
    "rtf": ("emergency.rtf", "Turku", "What is the emergency number of the Turku site?"),
    "txt": ("cafe.txt", "Kämp", "When does Café Kämp serve breakfast?"),
    "png": ("warranty.png", "42", "How long is the warranty of model QX-7731?"),
    "scan": ("contract-scan.pdf", "March", "When does contract 2291 renew?"),
}


def xlsx(path: Path) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Depots"
    ws.append(["Depot", "City", "Manager", "Phone"])
    for i in range(1, 60):
        city = "Kuopio" if i == 44 else f"Town {i}"
        manager = "Onni Lindqvist" if i == 44 else f"Manager {i}"
        ws.append([f"Depot {i}", city, manager, f"+358 40 {1000 + i}"])
    wb.create_sheet("Notes").append(["Remark"])
    wb.properties.title = "Depot directory"
    wb.properties.creator = "Facilities team"
    wb.save(path)
    return path


def delimited(path: Path, delimiter: str, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return path


def parts_csv(path: Path) -> Path:
    rows = [["Part", "Price EUR", "Supplier"]]
    rows += [[f"AB-{1000 + i}", f"{i}.00", f"Supplier {i}"] for i in range(30)]
    rows.insert(12, ["ZX-4411", "73.50", "Norrland Steel"])
    return delimited(path, ",", rows)


def rooms_tsv(path: Path) -> Path:
    rows = [["Room", "Floor", "Seats"], ["Borealis", "2", "8"], ["Aurora", "3", "14"]]
    return delimited(path, "\t", rows)


def pptx(path: Path) -> Path:
    from pptx import Presentation

    prs = Presentation()
    for n, (title, body) in enumerate(
        [
            ("Welcome", FILLER),
            ("Agenda", "Budget, backups, questions."),
            ("Backup rotation", "Tapes rotate every fourteen days to the vault in Oulu."),
        ],
        start=1,
    ):
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if n == 3:
            slide.notes_slide.notes_text_frame.text = "Remind the team about the Oulu courier."
    prs.core_properties.title = "Backup plan 2026"
    prs.core_properties.author = "IT operations"
    prs.save(str(path))
    return path


def eml(path: Path) -> Path:
    msg = EmailMessage()
    msg["Subject"] = "Quarterly depot audit"
    msg["From"] = "Aino Virtanen <aino@example.com>"
    msg["To"] = "ops@example.com"
    msg["Date"] = "Tue, 03 Nov 2026 10:00:00 +0200"
    msg.set_content("Hello,\n\nThe audit of the Joensuu depot found 17 missing pallets.\n")
    msg.add_attachment(
        b"The spare generator of the Joensuu depot is stored in hall C7.\n",
        maintype="text", subtype="plain", filename="inventory.txt",
    )  # fmt: skip
    path.write_bytes(bytes(msg))
    return path


def msg(path: Path) -> Path:
    from tests.msg_writer import MsgSpec, build_msg

    spec = MsgSpec(
        subject="Fire drill schedule",
        body="Hi all,\n\nThe fire drill at the Kotka warehouse is on Thursday at 14:00.\n",
        sender_name="Eero Salo", sender_email="eero@example.com",
    )  # fmt: skip
    path.write_bytes(build_msg(spec))
    return path


def _odf_meta(doc: Any, title: str) -> None:
    from odf import dc

    doc.meta.addElement(dc.Title(text=title))


def odt(path: Path) -> Path:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    doc = OpenDocumentText()
    _odf_meta(doc, "Visitor policy")
    doc.text.addElement(H(outlinelevel=1, text="Visitor policy"))
    doc.text.addElement(P(text=FILLER))
    doc.text.addElement(P(text="Visitors must wear an orange badge in the Vaasa office."))
    doc.save(str(path))
    return path


def ods(path: Path) -> Path:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    table = Table(name="Budget")
    for row in (["Site", "Cooling budget EUR"], ["Espoo", "31000"], ["Lahti", "48000"]):
        tr = TableRow()
        for value in row:
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=value))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def odp(path: Path) -> Path:
    from odf.draw import Frame, Page, TextBox
    from odf.opendocument import OpenDocumentPresentation
    from odf.style import MasterPage, PageLayout
    from odf.text import P

    doc = OpenDocumentPresentation()
    layout = PageLayout(name="layout")
    doc.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    doc.masterstyles.addElement(master)
    for text in (FILLER, "The Rovaniemi office closes at 15:00 on Fridays."):
        page = Page(masterpagename=master)
        frame = Frame(width="20cm", height="5cm", x="1cm", y="1cm")
        box = TextBox()
        box.addElement(P(text=text))
        frame.addElement(box)
        page.addElement(frame)
        doc.presentation.addElement(page)
    doc.save(str(path))
    return path


def rtf(path: Path) -> Path:
    path.write_text(
        r"{\rtf1\ansi{\info{\title Emergency numbers}{\author Security office}}"
        r"\pard Security contacts.\par "
        r"\pard The emergency number of the Turku site is 555 0199.\par}",
        encoding="ascii",
    )
    return path


def latin1_txt(path: Path) -> Path:
    path.write_bytes("Café Kämp serves breakfast from 7 to 10.\n".encode("cp1252"))
    return path


def text_image(lines: list[str], width: int = 1240) -> Any:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, 30)
    image = Image.new("L", (width, 120 + 60 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((60, 60 + 60 * i), line, fill=0, font=font)
    return image


def scan_png(path: Path) -> Path:
    text_image(["Warranty terms", "The warranty for model QX-7731 lasts 42 months."]).save(path)
    return path


def scanned_pdf(path: Path) -> Path:
    """Two pages of pure image (no text layer), as a scanner makes them."""
    first = text_image(["Service contract 2291", FILLER[:40]], 1240).convert("RGB")
    second = text_image(["Contract 2291 renews automatically in March."], 1240).convert("RGB")
    first.save(path, "PDF", resolution=150.0, save_all=True, append_images=[second])
    return path


MAKERS: dict[str, Callable[[Path], Path]] = {
    "xlsx": xlsx, "csv": parts_csv, "tsv": rooms_tsv, "pptx": pptx, "eml": eml, "msg": msg,
    "odt": odt, "ods": ods, "odp": odp, "rtf": rtf, "txt": latin1_txt, "png": scan_png,
    "scan": scanned_pdf,
}  # fmt: skip


def make_formats(directory: Path) -> dict[str, Path]:
    return {kind: MAKERS[kind](directory / FACTS[kind][0]) for kind in MAKERS}
