"""The parsers, one module per format family, and what they share (`base`).

Each is a pure function of the file's bytes and `base.Limits` that returns a
`base.ParsedDocument` or raises `base.ParseError` with a reason a user can act
on (a limit exceeded names its `ingest.` config key). They run in the parser sandbox;
`ingest/reader.py` picks the parser of a sniffed kind.

- `base`: `ParseError`, `Limits`, `ParsedDocument`, `clean_text`, the zip-bomb guard.
- `text`: plain text and Markdown; `decode_text` for text in any common encoding.
- `html`: web pages, their main content by default, a section per heading.
- `pdf`: text by page, scanned pages read by OCR when asked.
- `documents`: DOCX, ODT, RTF.
- `office_package`: what the office formats share (zip guard by name, OpenDocument
  trees, OpenDocument and OOXML metadata).
- `tables`: XLSX/XLSM, ODS, CSV/TSV: a section per region of rows, headers repeated.
- `slides`: PPTX, ODP: a section per slide (text, then speaker notes).
- `mail`: EML, Outlook MSG: headers as metadata, the body, attachments written out
  (`mime_nesting`: the MIME depth guard, before the parser reads a part).
- `ocr`: scanned PDF pages and images read by RapidOCR (models inside its wheel).
"""
