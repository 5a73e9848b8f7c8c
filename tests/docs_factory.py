"""Real PDF, DOCX, HTML and Markdown files with known facts, made by the tests."""

from __future__ import annotations

from pathlib import Path

FACTS = {
    "pdf": "The emergency generator in building C is tested every Tuesday at 9 am.",
    "docx": "The VPN password for contractors rotates every 45 days.",
    "html": "The third floor printer is named Hermes and has the address 10.0.3.77.",
    "md": "Nightly backups run at 02:00 and are kept for 35 days on the NAS called Vault.",
}

FILLER = (
    "The company values clear writing. Teams meet on Mondays to plan the week. "
    "Visitors sign in at the front desk and wear a badge at all times. "
)


def make_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, "Facilities report. " + FILLER * 3)
    pdf.add_page()
    pdf.multi_cell(0, 6, "Safety procedures. " + FACTS["pdf"] + " " + FILLER)
    pdf.add_page()
    pdf.multi_cell(0, 6, "Appendix. " + FILLER * 2)
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Remote access policy", level=1)
    document.add_paragraph(FILLER)
    document.add_heading("Passwords", level=2)
    document.add_paragraph(FACTS["docx"])
    document.save(str(path))
    return path


def make_html(path: Path) -> Path:
    path.write_text(
        "<html><head><title>IT FAQ</title><style>p{color:red}</style>"
        "<script>var secret = 'do not index';</script></head><body>"
        f"<h1>Printers</h1><p>{FACTS['html']}</p><h2>Other</h2><p>{FILLER}</p>"
        "</body></html>",
        encoding="utf-8",
    )
    return path


def make_md(path: Path) -> Path:
    path.write_text(f"# Backups\n\n{FACTS['md']}\n\n## Misc\n\n{FILLER}\n", encoding="utf-8")
    return path


def make_all(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "pdf": make_pdf(directory / "facilities.pdf"),
        "docx": make_docx(directory / "remote-access.docx"),
        "html": make_html(directory / "faq.html"),
        "md": make_md(directory / "backups.md"),
    }
