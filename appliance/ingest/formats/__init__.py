"""Parsers of the formats beyond text, Markdown, HTML, PDF and DOCX (one module per family).

Each is a pure function of the file's bytes and `parsers.Limits` that returns a
`parsers.ParsedDocument` or raises `parsers.ParseError` with a reason a user can act
on (a limit exceeded names its `ingest.` config key). They run in the parser sandbox.

- `tables`: XLSX/XLSM, ODS, CSV/TSV: a section per region of rows, headers repeated.
- `slides`: PPTX, ODP: a section per slide (text, then speaker notes).
- `documents`: ODT, RTF; `decode_text` for plain text in any common encoding.
- `mail`: EML, Outlook MSG: headers as metadata, the body, attachments written out.
- `ocr`: scanned PDF pages and images read by RapidOCR (models inside its wheel).
"""
