"""The parser child, started the way the server starts it, seen from outside: no server
secret in its environment, no new privileges, not root, and under Landlock no path of
the data directory; it still parses (files by descriptor, OCR, a mail's attachments)."""

from __future__ import annotations

import io
import os
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.cli.doctor import sandbox_verdict
from appliance.config.ingest import IngestSettings
from appliance.ingest.confine import run_confined
from appliance.ingest.landlock import landlock_abi
from appliance.ingest.reader import ParseError
from appliance.ingest.sandbox import ParseSandbox

SECRET = "sk-the-generation-key-of-this-test"
FACT = "The depot in Tampere holds 42 forklifts."
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def fake_data_dir(root: Path) -> Path:
    """A data dir whose secrets any user could read and whose journal any user could
    write (mode bits): what keeps the child out must be its confinement."""
    data = root / "data"
    (data / "secrets").mkdir(parents=True)
    (data / "secrets" / "admin.key").write_text("admin-key\n")
    (data / "journal.sqlite3").write_bytes(b"SQLite format 3\x00")
    for path in (data / "secrets" / "admin.key", data / "journal.sqlite3"):
        path.chmod(0o666)
    for directory in (data, data / "secrets", *data.parents):
        if directory.stat().st_uid == os.getuid():
            directory.chmod(directory.stat().st_mode | 0o005)
    return data


def proc_facts(pid: int) -> tuple[bytes, dict[str, str]]:
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return environ, {k: v.strip() for k, v in status.items()}


def test_the_child_holds_no_secret_gains_no_privilege_and_reaches_no_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE__GENERATION__API_KEY", SECRET)
    data = fake_data_dir(tmp_path)
    upload = data / "uploads" / "note.txt"
    upload.parent.mkdir()
    upload.write_text(FACT)
    box = ParseSandbox(IngestSettings())
    try:
        parsed = box.parse(upload, "note.txt", html_main_content=True)
        assert parsed.sections[0].text == FACT  # read through the descriptor it was given
        assert box._proc is not None
        environ, status = proc_facts(box._proc.pid)
        assert b"APPLIANCE__" not in environ and SECRET.encode() not in environ
        assert status["NoNewPrivs"] == "1"
        if os.geteuid() == 0:
            assert status["Uid"].split()[0] != "0" and status["Gid"].split()[0] != "0"
        assert box.probe(data / "secrets" / "admin.key") == "EACCES"
        assert box.probe(data / "journal.sqlite3", write=True) == "EACCES"
        assert box.probe(upload) == "EACCES"  # not even the file it just parsed
        if landlock_abi():
            assert box.status()["landlock_abi"] == landlock_abi()
            assert box.probe(Path("/etc/passwd")) == "EACCES"  # outside the runtime
    finally:
        box.close()


def test_a_mails_attachments_come_back_through_the_server(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["Subject"] = "Depot audit"
    msg.set_content(FACT)
    msg.add_attachment(b"first", maintype="text", subtype="plain", filename="../../notes.txt")
    msg.add_attachment(b"second", maintype="text", subtype="plain", filename="notes.txt")
    mail = tmp_path / "audit.eml"
    mail.write_bytes(msg.as_bytes())
    out_dir = tmp_path / "attachments-0"
    out_dir.mkdir()
    box = ParseSandbox(IngestSettings())
    try:
        parsed = box.parse(mail, "audit.eml", html_main_content=True, out_dir=out_dir)
    finally:
        box.close()
    assert parsed.attachments == ["notes.txt", "notes (2).txt"]
    assert (out_dir / "notes.txt").read_bytes() == b"first"
    assert (out_dir / "notes (2).txt").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attachments-0", "audit.eml"]


def test_ocr_reads_an_image_in_the_confined_child(tmp_path: Path) -> None:
    img = Image.new("L", (1100, 200), 255)
    ImageDraw.Draw(img).text((40, 40), FACT, font=ImageFont.truetype(FONT, 30), fill=0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    scan = tmp_path / "scan.png"
    scan.write_bytes(buf.getvalue())
    box = ParseSandbox(IngestSettings())
    try:
        parsed = box.parse(scan, "scan.png", html_main_content=True)
        assert box.status()["no_new_privs"]
    finally:
        box.close()
    assert parsed.ocr_pages == [1]
    assert "tampere" in parsed.sections[0].text.lower()


def test_a_symlink_or_a_fifo_is_not_opened_for_the_child(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text(FACT)
    (tmp_path / "link.txt").symlink_to(target)
    os.mkfifo(tmp_path / "pipe.txt")
    box = ParseSandbox(IngestSettings())
    try:
        with pytest.raises(ParseError, match="cannot open the file"):
            box.parse(tmp_path / "link.txt", "link.txt", html_main_content=True)
        with pytest.raises(ParseError, match="not a regular file"):
            box.parse(tmp_path / "pipe.txt", "pipe.txt", html_main_content=True)
    finally:
        box.close()


def test_run_confined_reads_only_what_it_is_given(tmp_path: Path) -> None:
    data = fake_data_dir(tmp_path)
    given = tmp_path / "given"
    given.mkdir()
    (given / "model.gguf").write_bytes(b"GGUF")
    given.chmod(0o755)
    script = (
        "import sys\n"
        "for p in sys.argv[1:]:\n"
        "    try: open(p, 'rb').read(4); print(p, 'ok')\n"
        "    except OSError as e: print(p, e.errno)\n"
        "print(open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0])\n"
    )
    secret, model = data / "secrets" / "admin.key", given / "model.gguf"
    # timeout: a hang guard (a confined Python start and two opens, ~1 s)
    done = run_confined(
        [sys.executable, "-c", script, str(model), str(secret)], read=[given], timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0] == f"{model} ok"
    assert lines[1] == f"{secret} 13"  # EACCES
    assert lines[2] == "1"


def test_doctor_says_when_the_kernel_has_no_landlock() -> None:
    # the report a child gives on a kernel without Landlock (RHEL 8's 4.18), as data
    no_landlock = {
        "uid": 65534, "no_new_privs": True, "landlock_abi": 0,
        "landlock_error": "no Landlock: not in this kernel (4.18.0-553.el8_10.x86_64)",
    }  # fmt: skip
    line, advice = sandbox_verdict(no_landlock, "EACCES")
    assert line.startswith("NO Landlock, uid 65534, NoNewPrivs")
    assert "no file-system confinement" in advice and "4.18.0" in advice
    landlock = {"uid": 65534, "no_new_privs": True, "landlock_abi": 7}
    line, advice = sandbox_verdict(landlock, "EACCES")
    assert line.startswith("Landlock ABI 7 (files, TCP, signals)") and not advice
    line, advice = sandbox_verdict(landlock, "ok")  # a data dir inside the runtime's
    assert "admin.key readable!" in line and "move the data dir" in advice
