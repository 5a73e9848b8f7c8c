"""Spreadsheets (XLSX/XLSM, ODS) and delimited text (CSV/TSV): a section per region of rows.

The first non-empty row of a sheet is its header; every later row is written as
"Header1: value1; Header2: value2", so a row found alone still says what its values
are. Rows are grouped into regions of `REGION_ROWS` rows (fewer when their text
passes `REGION_CHARS`), cited as "sheet Prices, rows 2-41" ("row 7" for one row).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from appliance.domain.types import Section
from appliance.ingest.formats.base import Limits, MiB, ParsedDocument, ParseError
from appliance.ingest.formats.office_package import (
    TABLE,
    TEXT,
    check_package,
    elements,
    inline_text,
    load_odf,
    odf_body,
    odf_metadata,
    ooxml_metadata,
)
from appliance.ingest.formats.text import decode_text

REGION_ROWS = 40
REGION_CHARS = 2000

Rows = Iterable[tuple[int, list[str]]]  # (row number as the spreadsheet shows it, cells)


class _Cells:
    """Counts cells read across all sheets of a document against `ingest.max_cells`."""

    def __init__(self, limits: Limits) -> None:
        self.limit = limits.max_cells
        self.read = 0

    def add(self, count: int) -> None:
        self.read += count
        if self.read > self.limit:
            raise ParseError(f"the spreadsheet has more cells than ingest.max_cells={self.limit}")


def regions(rows: Rows, sheet: str | None = None) -> Iterator[Section]:
    """Sections of about `REGION_ROWS` rows, each row read against the header row."""
    header: list[str] | None = None
    header_row = 0
    lines: list[str] = []
    first = last = size = 0

    def section() -> Section:
        span = f"row {first}" if first == last else f"rows {first}-{last}"
        return Section(
            "\n".join(lines), heading=sheet, location=f"sheet {sheet}, {span}" if sheet else span
        )

    for number, raw in rows:
        cells = [" ".join(cell.split()) for cell in raw]
        if not any(cells):
            continue
        if header is None:
            header, header_row = cells, number
            continue
        named = (
            f"{header[i]}: {cell}" if i < len(header) and header[i] else cell
            for i, cell in enumerate(cells)
            if cell
        )
        line = "; ".join(named)
        if lines and (len(lines) >= REGION_ROWS or size + len(line) > REGION_CHARS):
            yield section()
            lines.clear()
        if not lines:
            first, size = number, 0
        lines.append(line)
        last = number
        size += len(line) + 1
    if lines:
        yield section()
    elif header is not None:  # a header and nothing under it: its own text
        lines.append(" | ".join(cell for cell in header if cell))
        first = last = header_row
        yield section()


# --- XLSX --------------------------------------------------------------------------------


def _format(value: Any, number_format: str = "General") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, int | float):
        if "%" in number_format:
            return f"{value * 100:.10g}%"
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}" if isinstance(value, float) else str(value)
    return str(value)


def _xlsx_rows(sheet: Any, cells: _Cells) -> Iterator[tuple[int, list[str]]]:
    sheet.reset_dimensions()  # the declared size may be wrong; rows end at their last cell
    for number, row in enumerate(sheet.iter_rows(), start=1):
        cells.add(len(row))
        values = [
            _format(cell.value, getattr(cell, "number_format", "General") or "General")
            for cell in row
        ]
        yield number, values


_SHARED_STRING = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,31}:)?si[\s>/]")


def _check_shared_strings(data: bytes, limits: Limits) -> None:
    """Refuse a shared string table of more than `max_cells` strings before openpyxl loads it.

    openpyxl reads the whole table when it opens a workbook, read-only or not: 150 MiB of
    tiny strings (a 400 KiB zip) take 1.4 GB and 100 s. Counted here streaming, and
    stopped at the limit; a malformed package is left to openpyxl to report.
    """
    from xml.etree import ElementTree

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            types = ElementTree.fromstring(package.read("[Content_Types].xml"))
            parts = [
                str(node.get("PartName", "")).lstrip("/")
                for node in types
                if str(node.get("ContentType", "")).endswith("sharedStrings+xml")
            ]
            for part in parts:
                count, tail = 0, b""
                with package.open(part) as fh:
                    while chunk := fh.read(MiB):
                        window = tail + chunk
                        count += sum(
                            1 for m in _SHARED_STRING.finditer(window) if m.end() > len(tail)
                        )
                        if count > limits.max_cells:
                            raise ParseError(
                                f"the workbook holds more than {limits.max_cells} shared strings, "
                                f"more than ingest.max_cells={limits.max_cells}"
                            )
                        tail = window[-40:]
    except (KeyError, ValueError, SyntaxError, OSError, zipfile.BadZipFile, zlib.error):
        return


def parse_xlsx(data: bytes, limits: Limits) -> ParsedDocument:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    check_package(data, limits, "XLSX")
    _check_shared_strings(data, limits)
    cells = _Cells(limits)
    sections: list[Section] = []
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for sheet in workbook.worksheets:
                sections.extend(regions(_xlsx_rows(sheet, cells), sheet.title))
        finally:
            workbook.close()
    except ParseError:
        raise
    except (
        zipfile.BadZipFile,
        KeyError,
        InvalidFileException,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        SyntaxError,  # xml.etree's ParseError
        OSError,
        EOFError,
        zlib.error,
    ) as exc:
        raise ParseError(f"not a readable XLSX file ({exc})") from exc
    return ParsedDocument(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        sections,
        metadata=ooxml_metadata(data),
    )


# --- CSV, TSV ----------------------------------------------------------------------------


def parse_delimited(data: bytes, limits: Limits, *, delimiter: str | None) -> ParsedDocument:
    """CSV or TSV; `delimiter` None sniffs it (comma, semicolon, tab, pipe; else comma)."""
    if len(data) > limits.max_text_mb * MiB:
        raise ParseError(
            f"the file holds {len(data) / MiB:.0f} MiB of text, more than "
            f"ingest.max_text_mb={limits.max_text_mb}"
        )
    text = decode_text(data)
    dialect: Any = csv.excel
    if delimiter is None:
        sample = text[:16384]
        if len(text) > len(sample) and "\n" in sample:
            sample = sample[: sample.rindex("\n")]
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
    else:
        dialect = type("Given", (csv.excel,), {"delimiter": delimiter})
    cells = _Cells(limits)
    # a field is never longer than the text: past the default 128 KiB is no error
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))

    def rows() -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(io.StringIO(text, newline=""), dialect)
        for number, row in enumerate(reader, start=1):
            cells.add(len(row))
            yield number, row

    try:
        sections = list(regions(rows()))
    except csv.Error as exc:
        raise ParseError(f"not a readable CSV file ({exc})") from exc
    tab = (delimiter or getattr(dialect, "delimiter", ",")) == "\t"
    return ParsedDocument("text/tab-separated-values" if tab else "text/csv", sections)


# --- ODS ---------------------------------------------------------------------------------


def _repeat(node: Any, name: str) -> int:
    try:
        return max(1, int(node.attributes.get((TABLE, name)) or 1))
    except ValueError:
        return 1


def _ods_cell(node: Any) -> str:
    """What the cell shows: its paragraphs, else its value attribute."""
    shown = [inline_text(p) for p in elements(node) if p.qname == (TEXT, "p")]
    text = "\n".join(shown).strip()
    if text:
        return text
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    for name in ("value", "date-value", "time-value", "boolean-value", "string-value"):
        value = node.attributes.get((office, name))
        if value:
            return str(value)
    return ""


def _ods_row(node: Any, cells: _Cells) -> list[str]:
    """A row's cells; runs of empty cells expand only when a non-empty cell follows."""
    values: list[str] = []
    pending = 0  # empty cells seen since the last non-empty one
    for cell in elements(node):
        if cell.qname not in ((TABLE, "table-cell"), (TABLE, "covered-table-cell")):
            continue
        count = _repeat(cell, "number-columns-repeated")
        text = _ods_cell(cell)
        if not text:
            pending += count
            continue
        cells.add(pending + count)
        values.extend([""] * pending)
        values.extend([text] * count)
        pending = 0
    return values


def _ods_row_nodes(node: Any) -> Iterator[Any]:
    for child in elements(node):
        if child.qname == (TABLE, "table-row"):
            yield child
        elif child.qname in (
            (TABLE, "table-row-group"),
            (TABLE, "table-header-rows"),
            (TABLE, "table-rows"),
        ):
            yield from _ods_row_nodes(child)


def _ods_rows(table: Any, cells: _Cells) -> Iterator[tuple[int, list[str]]]:
    number = 1
    for row in _ods_row_nodes(table):
        repeat = _repeat(row, "number-rows-repeated")
        values = _ods_row(row, cells)
        cells.add(1)  # a row read, even an empty one
        if any(values):  # a repeated empty run only moves the row number on
            for offset in range(repeat):
                if offset:
                    cells.add(len(values))
                yield number + offset, values
        number += repeat


def parse_ods(data: bytes, limits: Limits) -> ParsedDocument:
    document = load_odf(data, limits, "ODS")
    body = odf_body(document, "spreadsheet")
    cells = _Cells(limits)
    sections: list[Section] = []
    for table in elements(body) if body is not None else ():
        if table.qname == (TABLE, "table"):
            name = str(table.attributes.get((TABLE, "name")) or "") or None
            sections.extend(regions(_ods_rows(table, cells), name))
    return ParsedDocument(
        "application/vnd.oasis.opendocument.spreadsheet",
        sections,
        metadata=odf_metadata(document),
    )
