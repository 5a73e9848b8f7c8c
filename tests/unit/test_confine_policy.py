"""The parser confinement's decisions (issue 19): which uid and capability the child
keeps, which paths the runtime's mapped files open, how many tasks it may start, how big
a frame the server reads from it, and that a failed start leaks no descriptor."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import pytest

from appliance.config.ingest import IngestSettings
from appliance.ingest.confine import (
    NPROC_HEADROOM,
    ConfinementError,
    keep_dac_read,
    nproc_limit,
    tasks_of,
    unprivileged_ids,
)
from appliance.ingest.formats.base import ParseError
from appliance.ingest.runtime_paths import mapped_rules, runtime_dirs
from appliance.ingest.sandbox import ParseSandbox, frame_limit

# A stand-in for /proc/self/maps of the PyInstaller onedir bundle unpacked in /opt/appliance
# (this test does not run from a bundle): its executable beside a data dir, its libraries
# in _internal, a deleted mapping of /dev/zero and pseudo entries.
BUNDLE_MAPS_STAND_IN = """\
00400000-00401000 r--p 00000000 08:01 1 /opt/appliance/appliance
7f0000000000-7f0000001000 r--p 00000000 08:01 2 /opt/appliance/_internal/libpython3.11.so.1.0
7f0000001000-7f0000002000 r-xp 00000000 08:01 3 /opt/appliance/_internal/numpy.libs/libblas.so
7f0000002000-7f0000003000 r-xp 00000000 08:01 4 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000003000-7f0000004000 rw-s 00000000 00:01 5 /dev/zero (deleted)
7f0000004000-7f0000005000 rw-s 00000000 00:01 6 /memfd:ggml (deleted)
7f0000005000-7f0000006000 rw-p 00000000 00:00 0 [heap]
7f0000006000-7f0000007000 r-xp 00000000 00:00 0 [vdso]
7f0000007000-7f0000008000 rw-p 00000000 00:00 0
"""


def test_the_dac_capability_is_kept_only_where_landlock_fences_it() -> None:
    assert keep_dac_read(is_root=False, runtime_readable_by_others=False, abi=0) is False
    assert keep_dac_read(is_root=True, runtime_readable_by_others=True, abi=0) is False
    assert keep_dac_read(is_root=True, runtime_readable_by_others=False, abi=1) is True
    with pytest.raises(ConfinementError, match=r"cannot confine the parser.*Landlock"):
        keep_dac_read(is_root=True, runtime_readable_by_others=False, abi=0)


def test_a_root_parent_drops_to_nobody_not_the_data_dirs_owner() -> None:
    assert unprivileged_ids() == (65534, 65534)


def test_mapped_files_open_library_folders_only() -> None:
    folders, files = mapped_rules(BUNDLE_MAPS_STAND_IN, ["/opt/appliance/_internal"])
    assert "/opt/appliance" not in folders  # the bundle's folder (a data dir may be there)
    assert "/opt/appliance/appliance" in files  # the executable itself, as a file
    assert {"/opt/appliance/_internal", "/opt/appliance/_internal/numpy.libs"} <= folders
    assert "/usr/lib/x86_64-linux-gnu" in folders  # a later dlopen finds its siblings
    assert not any(p == "/dev" or "deleted" in p or "memfd" in p for p in folders | files)
    assert not any(p.startswith("[") for p in folders | files)


def test_this_processs_mapped_files_do_not_open_their_folders(tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept.bin", tmp_path / "gone.bin"
    for path in (kept, gone):
        path.write_bytes(b"\0" * mmap.PAGESIZE)
    with kept.open("rb") as k, gone.open("rb") as g:
        maps = [mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) for f in (k, g)]
    gone.unlink()  # now "…/gone.bin (deleted)" in /proc/self/maps
    try:
        read = runtime_dirs()
    finally:
        for mapped in maps:
            mapped.close()
    assert str(kept) in read
    assert str(tmp_path) not in read


def test_the_task_limit_leaves_room_above_what_the_uid_runs() -> None:
    assert nproc_limit(0, 1) >= NPROC_HEADROOM
    assert nproc_limit(3000, 64) - 3000 >= NPROC_HEADROOM + 64  # the server's threads
    assert nproc_limit(10, 128) > nproc_limit(10, 2)
    assert tasks_of(os.getuid()) >= 1  # at least this process


def test_a_process_with_two_threads_is_not_confined() -> None:
    """Run in a child: on code without the check it would confine this test's process."""
    script = (
        "import threading\n"
        "from appliance.ingest.confine import ConfinementError, Policy, confine\n"
        "stop = threading.Event()\n"
        "threading.Thread(target=stop.wait).start()\n"
        "try:\n"
        "    confine(Policy())\n"
        "    print('confined')\n"
        "except ConfinementError as exc:\n"
        "    print('refused:', exc)\n"
        "stop.set()\n"
    )
    run = subprocess.run(  # timeout: a hang guard (a Python start and one refusal, ~1 s)
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.stdout.startswith("refused: cannot confine a process of 2 threads"), run.stderr


def test_the_child_may_start_tasks_beyond_its_uids(tmp_path: Path) -> None:
    box = ParseSandbox(IngestSettings())
    try:
        confined = box.status()
        assert box._proc is not None
        limits = Path(f"/proc/{box._proc.pid}/limits").read_text()
        [line] = [x for x in limits.splitlines() if x.startswith("Max processes")]
        assert int(line.split()[2]) >= tasks_of(int(confined["uid"])) + NPROC_HEADROOM
    finally:
        box.close()


def test_a_huge_frame_from_the_child_is_refused_unread(tmp_path: Path) -> None:
    """A stand-in for a subverted child (this test cannot subvert a parser): it greets and
    then announces a 2 GiB answer. The server reads none of it and fails the request."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'\\x80\\0\\0\\0')"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    box = ParseSandbox(IngestSettings())
    assert frame_limit(IngestSettings()) < 2**31
    box._proc, box.confinement = child, {"uid": os.getuid()}  # greeted already
    tracemalloc.start()
    try:
        with pytest.raises(ParseError, match="sent an answer of more than"):
            box.probe(Path("/"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        box.close()
        child.wait(60)  # hang guard: the stand-in has written its 4 bytes and exited
    assert peak < 16 * 1024 * 1024


def test_a_child_that_cannot_start_leaks_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))  # mkdtemp fails
    box = ParseSandbox(IngestSettings())
    before = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        box.parse(note, "note.txt", html_main_content=True)
    assert sorted(os.listdir("/proc/self/fd")) == before
    box.close()


def test_the_frame_limit_covers_what_a_document_may_yield() -> None:
    limits = IngestSettings()
    mib = 1024 * 1024
    assert frame_limit(limits) >= (limits.max_text_mb + limits.max_unzipped_mb) * mib
    assert frame_limit(limits) < 2**32 - 1  # below what the 4-byte length can announce
