"""Office formats: each test writes a real file with the format's library and parses it."""

from __future__ import annotations

import codecs
import datetime as dt
import io
from typing import Any

import pytest

from appliance.ingest.formats.base import Limits, ParseError
from appliance.ingest.formats.documents import parse_odt, parse_rtf
from appliance.ingest.formats.slides import parse_odp, parse_pptx
from appliance.ingest.formats.tables import parse_delimited, parse_ods, parse_xlsx
from appliance.ingest.formats.text import decode_text

LIMITS = Limits()


def _xlsx(build: Any) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    build(workbook)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_xlsx_rows_read_with_headers_and_cite_sheet_and_rows() -> None:
    def build(workbook: Any) -> None:
        sheet = workbook.active
        sheet.title = "Prices"
        sheet.append(["Item", "Price", "Since"])
        for n in range(1, 61):
            sheet.append([f"part-{n}", n * 1.5, dt.datetime(2024, 3, 1)])
        sheet.append(["discount", 0.25])
        sheet["B62"].number_format = "0%"
        other = workbook.create_sheet("Staff")
        other["B3"] = "Name"
        other["C3"] = "Room"
        other["B5"] = "Ada"
        other["C5"] = 101
        workbook.properties.title = "Price list"
        workbook.properties.creator = "Finance"
        workbook.properties.created = dt.datetime(2023, 5, 6, 7, 8, 9)

    parsed = parse_xlsx(_xlsx(build), LIMITS)
    [hit] = [s for s in parsed.sections if "part-45" in s.text]
    assert "Item: part-45; Price: 67.5; Since: 2024-03-01" in hit.text
    assert (hit.heading, hit.location) == ("Prices", "sheet Prices, rows 42-62")
    assert parsed.sections[0].location == "sheet Prices, rows 2-41"
    assert "Item: part-2; Price: 3; Since: 2024-03-01" in parsed.sections[0].text
    assert "Item: discount; Price: 25%" in hit.text
    [staff] = [s for s in parsed.sections if s.heading == "Staff"]
    assert (staff.text, staff.location) == ("Name: Ada; Room: 101", "sheet Staff, row 5")
    assert parsed.metadata["title"] == "Price list"
    assert parsed.metadata["author"] == "Finance"
    assert parsed.metadata["created"] == "2023-05-06T07:08:09Z"
    assert parsed.content_type.endswith("spreadsheetml.sheet")


def test_xlsx_over_max_cells_fails_naming_the_key() -> None:
    def build(workbook: Any) -> None:
        for n in range(100):
            workbook.active.append([n, n, n, n])

    with pytest.raises(ParseError, match=r"ingest\.max_cells=50"):
        parse_xlsx(_xlsx(build), Limits(max_cells=50))


def test_xlsx_shared_strings_past_max_cells_refused_before_loading() -> None:
    import re
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(_xlsx(lambda workbook: workbook.active.append(["a"]))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:  # openpyxl writes inline strings: make a table
        for name in source.namelist():
            data = source.read(name)
            if name == "[Content_Types].xml":
                part = b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                part += b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
                data = data.replace(b"</Types>", part + b"</Types>")
            elif name == "xl/worksheets/sheet1.xml":
                data = re.sub(rb't="inlineStr"><is><t>a</t></is>', b't="s"><v>0</v>', data)
            package.writestr(name, data)
        strings = b"<x:si><x:t>a</x:t></x:si>" + b"<si><t>b</t></si>" * 10
        package.writestr("xl/sharedStrings.xml", b'<sst xmlns:x="urn:x">' + strings + b"</sst>")
    with pytest.raises(ParseError, match=r"shared strings, more than ingest\.max_cells=10"):
        parse_xlsx(out.getvalue(), Limits(max_cells=10))


def test_xlsx_empty_workbook_has_no_sections() -> None:
    assert parse_xlsx(_xlsx(lambda workbook: None), LIMITS).sections == []


def test_garbage_named_xlsx_fails() -> None:
    with pytest.raises(ParseError, match="not a readable XLSX"):
        parse_xlsx(b"this is not a spreadsheet at all" * 10, LIMITS)
    with pytest.raises(ParseError, match="not a readable XLSX"):  # a zip, but not a workbook
        out = io.BytesIO()
        import zipfile

        with zipfile.ZipFile(out, "w") as package:
            package.writestr("hello.txt", "hi")
        parse_xlsx(out.getvalue(), LIMITS)


def test_csv_sniffs_semicolons_and_cites_rows() -> None:
    text = "Name;City\n" + "".join(f"person {n};town {n}\n" for n in range(2, 50))
    parsed = parse_delimited(text.encode(), LIMITS, delimiter=None)
    [hit] = [s for s in parsed.sections if "person 45" in s.text]
    assert "Name: person 45; City: town 45" in hit.text
    assert (hit.heading, hit.location) == (None, "rows 42-49")
    assert parsed.content_type == "text/csv"


def test_tsv_with_explicit_delimiter() -> None:
    parsed = parse_delimited(b"a\tb\n1\t2\n", LIMITS, delimiter="\t")
    assert [(s.text, s.location) for s in parsed.sections] == [("a: 1; b: 2", "row 2")]
    assert parsed.content_type == "text/tab-separated-values"


@pytest.mark.parametrize(
    "data",
    [
        "Produit,Prix\ncafé,3\n".encode("latin-1"),
        codecs.BOM_UTF8 + "Produit,Prix\ncafé,3\n".encode(),
        "Produit,Prix\ncafé,3\n".encode("utf-16"),  # with its BOM
    ],
    ids=["latin-1", "utf-8-bom", "utf-16-bom"],
)
def test_csv_encodings(data: bytes) -> None:
    [section] = parse_delimited(data, LIMITS, delimiter=None).sections
    assert section.text == "Produit: café; Prix: 3"


def test_decode_text() -> None:
    assert decode_text("Prix: 5 € — très cher".encode("cp1252")) == "Prix: 5 € — très cher"
    assert decode_text("naïve façade".encode("utf-32")) == "naïve façade"
    mixed = ("Grüße aus Köln, schöne Straße, München, Zürich. " * 3).encode() + b"caf\xe9"
    assert decode_text(mixed).endswith("Zürich. caf\ufffd")
    assert decode_text("Привет, как дела? Это текст.".encode("cp1251")).startswith("Привет")
    with pytest.raises(ParseError, match="binary"):
        decode_text(b"PK\x03\x04\x00\x00binary")


def _odf(document: Any) -> bytes:
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def _odf_meta(document: Any) -> None:
    from odf import dc, meta

    document.meta.addElement(dc.Title(text="Quarterly"))
    document.meta.addElement(meta.InitialCreator(text="Grace"))
    document.meta.addElement(meta.CreationDate(text="2024-01-02T03:04:05.123456789"))


def test_ods_regions_skip_repeated_empty_runs() -> None:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    document = OpenDocumentSpreadsheet()
    _odf_meta(document)
    table = Table(name="Stock")

    def row(*values: str, repeat: int = 1) -> TableRow:
        element = TableRow(numberrowsrepeated=repeat) if repeat > 1 else TableRow()
        for value in values:
            cell = TableCell()
            if value:
                cell.addElement(P(text=value))
            element.addElement(cell)
        element.addElement(TableCell(numbercolumnsrepeated=16000))  # empty, never expanded
        return element

    table.addElement(row("Part", "Count"))
    table.addElement(row("bolt", "12"))
    table.addElement(row("", "", repeat=3))
    table.addElement(row("nut", "7"))
    table.addElement(row(repeat=1_048_000))  # the usual empty tail
    document.spreadsheet.addElement(table)
    parsed = parse_ods(_odf(document), Limits(max_cells=1000))
    [section] = parsed.sections
    assert section.text == "Part: bolt; Count: 12\nPart: nut; Count: 7"
    assert (section.heading, section.location) == ("Stock", "sheet Stock, rows 2-6")
    assert parsed.metadata == {
        "title": "Quarterly",
        "author": "Grace",
        "created": "2024-01-02T03:04:05",
    }


def test_pptx_slides_notes_tables_and_groups() -> None:
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    presentation.core_properties.title = "Roadmap"
    presentation.core_properties.author = "Linus"
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "Goals"
    first.placeholders[1].text = "Ship the appliance"
    first.notes_slide.notes_text_frame.text = "Mention the 2 TB limit"
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Budget"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (r, c), value in {(0, 0): "Year", (0, 1): "Cost", (1, 0): "2025", (1, 1): "40k"}.items():
        table.cell(r, c).text = value
    group = second.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(4), Inches(2), Inches(1)).text = "grouped note"
    out = io.BytesIO()
    presentation.save(out)

    parsed = parse_pptx(out.getvalue(), LIMITS)
    assert parsed.pages == 2
    assert [(s.text, s.page, s.heading, s.location) for s in parsed.sections] == [
        ("Goals\nShip the appliance", 1, "Goals", "slide 1"),
        ("Mention the 2 TB limit", 1, "Goals", "notes of slide 1"),
        ("Budget\nYear | Cost\n2025 | 40k\ngrouped note", 2, "Budget", "slide 2"),
    ]
    assert parsed.metadata["title"] == "Roadmap"
    assert parsed.metadata["author"] == "Linus"


def test_pptx_over_max_pages_fails_naming_the_key() -> None:
    from pptx import Presentation

    presentation = Presentation()
    for _ in range(6):
        presentation.slides.add_slide(presentation.slide_layouts[6])
    out = io.BytesIO()
    presentation.save(out)
    with pytest.raises(ParseError, match=r"has 6 slides, more than ingest\.max_pages=5"):
        parse_pptx(out.getvalue(), Limits(max_pages=5))


def test_odp_slides_and_notes() -> None:
    from odf.draw import Frame, Page, TextBox
    from odf.namespaces import PRESENTATIONNS
    from odf.opendocument import OpenDocumentPresentation
    from odf.presentation import Notes
    from odf.style import MasterPage, PageLayout
    from odf.text import P

    document = OpenDocumentPresentation()
    _odf_meta(document)
    layout = PageLayout(name="layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    document.masterstyles.addElement(master)
    for number, (title, body, note) in enumerate(
        [("Welcome", "Agenda for today", ""), ("Risks", "Disk failure", "Say: RAID 1")], 1
    ):
        page = Page(masterpagename=master, name=f"page{number}")
        heading = Frame(width="20cm", height="3cm", x="1cm", y="1cm")
        heading.setAttrNS(PRESENTATIONNS, "class", "title")
        heading.addElement(TextBox())
        heading.firstChild.addElement(P(text=title))
        page.addElement(heading)
        frame = Frame(width="20cm", height="10cm", x="1cm", y="5cm")
        frame.addElement(TextBox())
        frame.firstChild.addElement(P(text=body))
        page.addElement(frame)
        if note:
            notes = Notes()
            box = Frame(width="20cm", height="10cm", x="1cm", y="5cm")
            box.addElement(TextBox())
            box.firstChild.addElement(P(text=note))
            notes.addElement(box)
            page.addElement(notes)
        document.presentation.addElement(page)

    parsed = parse_odp(_odf(document), LIMITS)
    assert parsed.pages == 2
    assert [(s.text, s.page, s.heading, s.location) for s in parsed.sections] == [
        ("Welcome\nAgenda for today", 1, "Welcome", "slide 1"),
        ("Risks\nDisk failure", 2, "Risks", "slide 2"),
        ("Say: RAID 1", 2, "Risks", "notes of slide 2"),
    ]
    assert parsed.metadata["title"] == "Quarterly"
    with pytest.raises(ParseError, match=r"ingest\.max_pages=1"):
        parse_odp(_odf(document), Limits(max_pages=1))


def test_odt_headings_lists_and_tables() -> None:
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableRow
    from odf.text import H, List, ListItem, P

    document = OpenDocumentText()
    _odf_meta(document)
    document.text.addElement(P(text="Preface text"))
    document.text.addElement(H(outlinelevel=1, text="Backups"))
    document.text.addElement(P(text="Backups run nightly at 02:00."))
    items = List()
    item = ListItem()
    item.addElement(P(text="keep 30 copies"))
    items.addElement(item)
    document.text.addElement(items)
    table = Table(name="t")
    row = TableRow()
    for value in ("Disk", "2 TB"):
        cell = TableCell()
        cell.addElement(P(text=value))
        row.addElement(cell)
    table.addElement(row)
    document.text.addElement(table)

    parsed = parse_odt(_odf(document), LIMITS)
    assert [(s.text, s.heading) for s in parsed.sections] == [
        ("Preface text", None),
        ("Backups run nightly at 02:00.\nkeep 30 copies\nDisk | 2 TB", "Backups"),
    ]
    assert parsed.metadata["author"] == "Grace"
    assert parsed.content_type == "application/vnd.oasis.opendocument.text"


def test_rtf_text_and_info() -> None:
    rtf = (
        r"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}"
        r"{\info{\title Caf\'e9 menu}{\author Ann}{\creatim\yr2024\mo3\dy5\hr9\min30}}"
        r"\f0 The espresso costs 2 euros.\par Opening: 7am.\par}"
    )
    parsed = parse_rtf(rtf.encode("ascii"), LIMITS)
    [section] = parsed.sections
    assert section.text == "The espresso costs 2 euros.\nOpening: 7am."
    assert parsed.metadata == {
        "title": "Café menu",
        "author": "Ann",
        "created": "2024-03-05T09:30:00",
    }
    assert parsed.content_type == "application/rtf"
    with pytest.raises(ParseError, match=r"ingest\.max_text_mb=0"):
        parse_rtf(rtf.encode("ascii"), Limits(max_text_mb=0))
