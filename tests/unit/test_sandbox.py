"""The parser sandbox on real hostile files: each fails naming its limit, the parent is safe."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest

from appliance.config.ingest import IngestSettings
from appliance.ingest.reader import ParseError, parse_file
from appliance.ingest.sandbox import ParseCancelled, ParseSandbox
from tests.docs_factory import make_all
from tests.hostile_files import docx_bomb, many_pages_pdf, nested_html


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return docx_bomb(tmp_path_factory.mktemp("bomb") / "report.docx", unzipped_mib=1024)


def sandbox(**limits: object) -> ParseSandbox:
    return ParseSandbox(IngestSettings(**limits))  # type: ignore[arg-type]


def test_good_files_parse_as_in_process_and_reuse_one_child(tmp_path: Path) -> None:
    box = sandbox()
    try:
        docs = make_all(tmp_path)
        pids = set()
        for path in docs.values():
            got = box.parse(path, path.name, html_main_content=True)
            assert got == parse_file(path, path.name)
            assert box._proc is not None
            pids.add(box._proc.pid)
        assert len(pids) == 1
    finally:
        box.close()


def test_zip_bomb_is_refused_from_its_directory(bomb: Path) -> None:
    box = sandbox()
    try:
        # the 1024 MiB in the message is what the zip's directory declares: refused from it
        # (a time bound here was a speed check; pytest-timeout is the hang guard)
        with pytest.raises(ParseError, match=r"1024 MiB .*ingest\.max_unzipped_mb=200"):
            box.parse(bomb, "report.docx", html_main_content=True)
    finally:
        box.close()


def test_memory_limit_holds_when_the_zip_limit_is_lifted(bomb: Path) -> None:
    box = sandbox(max_unzipped_mb=4096, parse_memory_mb=512)
    parent = psutil.Process()
    before = parent.memory_info().rss
    try:
        with pytest.raises(ParseError, match=r"ingest\.parse_memory_mb=512"):
            box.parse(bomb, "report.docx", html_main_content=True)
        assert parent.memory_info().rss < before + 100 * 1024 * 1024
        # the next file gets a fresh child
        ok = bomb.with_name("ok.txt")
        ok.write_text("The backup tapes go offsite on Fridays.")
        assert box.parse(ok, "ok.txt", html_main_content=True).sections
    finally:
        box.close()


def test_page_limit(tmp_path: Path) -> None:
    pdf = many_pages_pdf(tmp_path / "pages.pdf", pages=100_000)
    box = sandbox(max_pages=5000)
    try:
        with pytest.raises(ParseError, match=r"100000 pages.*ingest\.max_pages=5000"):
            box.parse(pdf, "pages.pdf", html_main_content=True)
    finally:
        box.close()


def test_quadratic_html_hits_the_cpu_limit(tmp_path: Path) -> None:
    page = nested_html(tmp_path / "deep.html", depth=160_000)
    # the CPU limit under test; the wall-clock one only a hang guard (CPU seconds are not
    # taken by a CPU hog beside the suite)
    box = sandbox(parse_cpu_s=2, parse_timeout_s=600)
    try:
        with pytest.raises(ParseError, match=r"ingest\.parse_cpu_s=2 CPU seconds"):
            box.parse(page, "deep.html", html_main_content=True)
    finally:
        box.close()


def test_wall_clock_limit(tmp_path: Path) -> None:
    page = nested_html(tmp_path / "deep.html", depth=160_000)
    box = sandbox(parse_cpu_s=600, parse_timeout_s=1)  # the wall-clock limit under test
    try:
        with pytest.raises(ParseError, match=r"ingest\.parse_timeout_s=1 s"):
            box.parse(page, "deep.html", html_main_content=True)
    finally:
        box.close()


def test_abort_stops_a_parse_in_progress(tmp_path: Path) -> None:
    page = nested_html(tmp_path / "deep.html", depth=160_000)
    box = sandbox(parse_cpu_s=600, parse_timeout_s=600)  # limits far past the abort
    try:
        threading.Timer(0.5, box.abort).start()  # once the parse is under way
        # ParseCancelled shows the abort killed the child mid-parse: an abort that came
        # after the parse is a no-op on an idle child, and the limits raise ParseError
        # (a time bound here was a speed check; pytest-timeout is the hang guard)
        with pytest.raises(ParseCancelled):
            box.parse(page, "deep.html", html_main_content=True)
    finally:
        box.close()
