"""The hostile corpus against the real server: each file refused or failed with its reason,
the server ready throughout, its memory untouched while a zip bomb is processed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import server_env
from tests.docs_factory import make_md, make_pdf
from tests.e2e.server import ServerProcess
from tests.hostile_files import (
    big_text,
    docx_bomb,
    many_pages_pdf,
    nested_html,
    nested_mime_mail,
    pptx_many_slides,
    truncated,
    xlsx_shared_strings_bomb,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("hostile-data")
    env = server_env(
        data, models_dir,
        # the hostile files' limits: CPU seconds (a CPU hog beside the suite does not count
        # against them); the wall-clock limit is a hang guard well past any fair parse
        APPLIANCE__INGEST__PARSE_CPU_S="3",
        APPLIANCE__INGEST__PARSE_TIMEOUT_S="60",
        APPLIANCE__INGEST__MAX_TEXT_MB="20",
    )  # fmt: skip
    proc = ServerProcess(env, tmp_path_factory.mktemp("logs") / "server.log").start()
    yield proc
    proc.stop()


def upload(server: ServerProcess, *files: tuple[str, bytes]) -> httpx.Response:
    with server.client(120) as client:  # hang guard: an upload returns 202 at once
        return client.post("/v1/documents", files=[("files", f) for f in files])


def finished_job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    with server.client() as client:
        # hang guard: each hostile file fails within its 3 CPU s, or 60 s of wall clock
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] not in ("queued", "running"):
                return job
            assert client.get("/readyz").status_code == 200, "the server stays ready"
            time.sleep(0.2)
    raise AssertionError("job did not finish")


def failure_of(server: ServerProcess, name: str, data: bytes) -> str:
    resp = upload(server, (name, data))
    assert resp.status_code == 202, resp.text
    job = finished_job(server, resp.json()["job_id"])
    [file] = job["files"]
    assert file["state"] == "failed", file
    return str(file["error"])


def test_zip_bomb_fails_and_server_memory_stays_put(server: ServerProcess, tmp_path: Path) -> None:
    bomb = docx_bomb(tmp_path / "bomb.docx", unzipped_mib=1024).read_bytes()
    assert len(bomb) < 2 * 1024 * 1024
    assert server.proc is not None
    proc = psutil.Process(server.proc.pid)
    idle = proc.memory_info().rss
    peak = idle
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.05):  # the sampling period, not a deadline
            peak = max(peak, proc.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        reason = failure_of(server, "quarterly.docx", bomb)
    finally:
        stop.set()
        sampler.join()
    assert "ingest.max_unzipped_mb=200" in reason
    assert peak < 1.5 * idle, (peak, idle)


@pytest.mark.parametrize(
    ("name", "make", "limit"),
    [
        ("deep.html", lambda p: nested_html(p, depth=160_000), "ingest.parse_cpu_s=3"),
        ("pages.pdf", lambda p: many_pages_pdf(p, pages=100_000), "ingest.max_pages=5000"),
        ("huge.txt", lambda p: big_text(p, mib=30), "ingest.max_text_mb=20"),
        ("strings.xlsx", xlsx_shared_strings_bomb, "ingest.max_cells=2000000"),
        ("deck.pptx", lambda p: pptx_many_slides(p, slides=6000), "ingest.max_pages=5000"),
        ("nested.eml", lambda p: nested_mime_mail(p, depth=10_000), "ingest.max_mime_depth=8"),
    ],
)
def test_each_limit_fails_the_file_naming_it(
    server: ServerProcess, tmp_path: Path, name: str, make: Any, limit: str
) -> None:
    assert limit in failure_of(server, name, make(tmp_path / name).read_bytes())


def test_truncated_files_fail_with_a_reason(server: ServerProcess, tmp_path: Path) -> None:
    pdf = truncated(make_pdf(tmp_path / "a.pdf"), tmp_path / "cut.pdf").read_bytes()
    assert "PDF" in failure_of(server, "cut.pdf", pdf)
    bomb = docx_bomb(tmp_path / "b.docx", unzipped_mib=1)
    assert "DOCX" in failure_of(server, "cut.docx", bomb.read_bytes()[:300])


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("report.pdf", b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "an ELF executable"),
        ("notes.txt", b"PK\x03\x04" + b"\x00" * 64, "a zip archive"),
        ("memo.docx", b"%PDF-1.4\n%...", "a PDF"),
        ("setup.exe", b"MZ\x90\x00", "unsupported file type `.exe`"),
        ("a." + "x" * 250, b"hello", "unsupported file type `(too long)`"),
        ("data.txt", b"abc\x00\x01\x02def", "binary"),
    ],
)
def test_mislabelled_or_unknown_files_get_415(
    server: ServerProcess, name: str, data: bytes, reason: str
) -> None:
    resp = upload(server, (name, data))
    assert resp.status_code == 415, resp.text
    assert reason in resp.json()["detail"]


def test_odd_names_are_stored_clean_and_a_mixed_upload_goes_on(
    server: ServerProcess, tmp_path: Path
) -> None:
    md = make_md(tmp_path / "x.md").read_bytes()
    resp = upload(
        server,
        ("\u202egnp.md", md),
        ("\x1b[31mred\x1b[0m/../../etc/passwd.md", md + b"\nmore"),
        ("tool.exe", b"MZ\x90\x00"),
    )
    assert resp.status_code == 202, resp.text
    job = finished_job(server, resp.json()["job_id"])
    names = [f["file_name"] for f in job["files"]]
    assert names == ["gnp.md", "passwd.md", "tool.exe"]
    assert [f["state"] for f in job["files"]] == ["done", "done", "failed"]
    assert "unsupported file type `.exe`" in job["files"][2]["error"]
    uploads = server.data_dir / "uploads"
    assert not any(p.name.startswith(("\u202e", "\x1b")) for p in uploads.rglob("*"))


def test_new_format_bombs_fail_alone_beside_a_good_file(
    server: ServerProcess, tmp_path: Path
) -> None:
    files = [
        ("strings.xlsx", xlsx_shared_strings_bomb(tmp_path / "s.xlsx").read_bytes()),
        ("deck.pptx", pptx_many_slides(tmp_path / "d.pptx", slides=6000).read_bytes()),
        ("nested.eml", nested_mime_mail(tmp_path / "n.eml").read_bytes()),
        # content no other test of this server uploads (same content would be "skipped")
        ("good.md", b"# Loading dock\n\nThe loading dock opens at 6:30 on weekdays.\n"),
    ]
    resp = upload(server, *files)
    assert resp.status_code == 202, resp.text
    job = finished_job(server, resp.json()["job_id"])
    states = {f["file_name"]: f["state"] for f in job["files"]}
    assert states == {
        "strings.xlsx": "failed", "deck.pptx": "failed", "nested.eml": "failed",
        "good.md": "done",
    }  # fmt: skip
    assert all(f["error"] and "ingest." in f["error"] for f in job["files"][:3])
