"""Parse files in a confined child process with memory, CPU and wall-clock limits.

A file that costs too much (a zip bomb, a quadratic HTML tree, a crafted PDF)
takes down only the child: the server's memory stays its own, the failure names
the limit, and the next file gets a fresh child. A file that subverts a parser
(pypdfium2, Pillow, onnxruntime, lxml) finds itself in a process that holds no server
secret (its environment is built here, not inherited), cannot gain privileges
(no_new_privs), is not root (`nobody` when the server is root: not the service user,
who owns the data directory), and under Landlock reads only the runtime and writes only
its own scratch directory: no path of the data directory, no TCP (`ingest/confine.py`).
It never opens a path: the server opens each file and passes the descriptor. The child
reports its confinement first; a kernel without Landlock is logged once (and shown by
`appliance doctor`), and parsing goes on, unless the child would need
CAP_DAC_READ_SEARCH (a root server whose runtime only root can read): then it refuses,
and each file fails saying why. A frame bigger than the ingest limits allow
(`frame_limit`) kills the child before it is read. One child is kept between files, so
a folder of small files pays the interpreter start once. `abort()` kills the child (a
cancelled job). Blocking: call
`parse` from a thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import msgspec

from appliance.config.ingest import IngestSettings
from appliance.domain.types import Section
from appliance.ingest.confine import Policy, python_command, unprivileged_ids
from appliance.ingest.formats.base import ParsedDocument, ParseError
from appliance.ingest.parse_worker import FrameTooLarge, read_frame, write_frame
from appliance.runtime.files import READ_NOFOLLOW

log = logging.getLogger(__name__)

MiB = 1024 * 1024
FRAME_SLACK_MB = 16  # metadata, headings, msgpack's own bytes


class ParseCancelled(Exception):
    """`abort()` stopped the parse (the job was cancelled)."""


# what the parsers may take from the server's environment (a value the sysadmin set wins)
PASSED_ENV = (
    "LANG", "LC_ALL", "TZ", "MALLOC_ARENA_MAX", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
    "PYTHONPATH",  # a source checkout: the child runs the same code as the server
)  # fmt: skip


def worker_env(scratch: Path) -> dict[str, str]:
    """The child's whole environment: none of the server's (it holds API keys), but a
    locale, its scratch directory as home and temp, few malloc arenas (OCR's threads would
    each reserve a 64 MiB arena of the capped address space) and one BLAS thread (numpy's,
    beside ONNX Runtime's own pool)."""
    env = {
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(scratch), "TMPDIR": str(scratch),
        "MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1",
    }  # fmt: skip
    return env | {k: os.environ[k] for k in PASSED_ENV if k in os.environ}


def worker_command(memory_mb: int, policy: Policy, socket_fd: int) -> list[str]:
    base = python_command("appliance.ingest.parse_worker", "parse-worker")
    return [*base, str(memory_mb), policy.dumps(), str(socket_fd)]


def frame_limit(limits: IngestSettings) -> int:
    """The most bytes the server reads in one frame from the child: the text a document
    may yield (twice: sections repeat headings and locations), a mail's attachments, and
    slack. A bigger frame comes from a subverted child: it is killed, nothing allocated."""
    return (2 * limits.max_text_mb + limits.max_unzipped_mb + FRAME_SLACK_MB) * MiB


def open_input(path: Path) -> int:
    """`path` opened for the child: a regular file, not through a final symlink."""
    try:
        fd = os.open(path, READ_NOFOLLOW)
    except OSError as exc:
        raise ParseError(f"cannot open the file: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ParseError("not a regular file")
    return fd


def write_attachments(out_dir: Path, attachments: list[list[Any]]) -> list[str]:
    """Write the child's `[name, bytes]` pairs into `out_dir`: plain new files only."""
    written = []
    for name, data in attachments:
        if not isinstance(name, str) or "/" in name or "\0" in name or name in ("", ".", ".."):
            continue
        try:
            with (out_dir / name).open("xb") as fh:  # O_EXCL: never through a symlink
                fh.write(data)
        except OSError as exc:
            log.warning("attachment %r not written: %s", name, exc.strerror)
            continue
        written.append(name)
    return written


class ParseSandbox:
    def __init__(self, limits: IngestSettings) -> None:
        self._limits = limits
        self._frame_limit = frame_limit(limits)
        self._lock = threading.Lock()  # one file at a time
        self._proc: subprocess.Popen[bytes] | None = None
        self._files: socket.socket | None = None  # passes each file's descriptor
        self._scratch: Path | None = None
        self._remove_scratch: weakref.finalize[Any, Any] | None = None  # also at exit
        self._why_killed: str | None = None
        self._busy: subprocess.Popen[bytes] | None = None  # the child parsing right now
        self._ocr_page: int | None = None  # the page being read by OCR, if any
        self._encoder = msgspec.msgpack.Encoder()
        self.confinement: dict[str, Any] | None = None  # what the last child reported
        self._warned = False

    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._discard()
        self._scratch = Path(tempfile.mkdtemp(prefix="appliance-parse-"))
        self._remove_scratch = weakref.finalize(self, shutil.rmtree, self._scratch, True)
        if os.geteuid() == 0:  # the child drops to this user: its scratch is its own
            os.chown(self._scratch, *unprivileged_ids())
        policy = Policy(write=[str(self._scratch)], fsize_mb=max(64, self._limits.max_unzipped_mb))
        self._files, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._proc = subprocess.Popen(
                worker_command(self._limits.parse_memory_mb, policy, theirs.fileno()),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                pass_fds=[theirs.fileno()], env=worker_env(self._scratch), cwd="/",
            )  # fmt: skip
        self.confinement = None
        return self._proc

    def _greeted(self, proc: subprocess.Popen[bytes]) -> bool:
        """Read a new child's report of its confinement; False if it died first. A child
        that could not confine itself is an error: no file is parsed unconfined."""
        if self.confinement is not None:
            return True
        frame = self._read(proc)
        if frame is None:
            return False
        hello = msgspec.msgpack.decode(frame)
        if not isinstance(hello, dict) or not hello.get("confined"):
            why = hello.get("error") if isinstance(hello, dict) else None
            raise ParseError(f"the parser sandbox could not confine its child: {why}")
        self.confinement = dict(hello["confined"])
        if not self._warned and self.confinement.get("landlock_error"):
            self._warned = True
            log.warning(
                "parser sandbox without file-system confinement: %s (a parser exploit could "
                "read what uid %s can read)", self.confinement["landlock_error"],
                self.confinement["uid"],
            )  # fmt: skip
        return True

    def _read(self, proc: subprocess.Popen[bytes]) -> bytes | None:
        """The child's next frame; None if it died, or if it sent a frame bigger than
        `frame_limit` (then it is killed, and the file fails naming that)."""
        assert proc.stdout is not None
        try:
            return read_frame(proc.stdout, self._frame_limit)
        except FrameTooLarge:
            self._why_killed = "oversized"
            if proc.poll() is None:
                proc.kill()
            return None

    def _discard(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None
        if self._remove_scratch is not None:
            self._remove_scratch()
            self._remove_scratch = self._scratch = None

    def _kill(self, why: str, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Kill `proc` (default: the child parsing now) if it is still that parse's."""
        proc = proc or self._busy
        if proc is not None and proc is self._busy and proc.poll() is None:
            self._why_killed = why
            proc.kill()

    def abort(self) -> None:
        """Stop the parse in progress, if any (thread-safe); an idle child is kept."""
        self._kill("cancelled")

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)
            self._discard()

    def status(self) -> dict[str, Any]:
        """Start the child if need be; what it reported of its confinement (`Confined`)."""
        self.probe(Path("/"))
        assert self.confinement is not None
        return self.confinement

    def probe(self, path: Path, *, write: bool = False) -> str:
        """Whether the child, confined, can open `path` (for writing if `write`): "ok" or
        the errno name (EACCES: Landlock or the uid said no). For `doctor` and tests."""
        with self._lock:
            self._why_killed = None
            proc = self._child()
            assert proc.stdin is not None and proc.stdout is not None
            timer = self._arm(self._limits.parse_timeout_s, "timeout", proc)
            self._busy = proc
            try:
                frame = None
                if self._greeted(proc):
                    request = {"probe": str(path), "write": write}
                    write_frame(proc.stdin, self._encoder.encode(request))
                    frame = self._read(proc)
            except OSError:
                frame = None
            finally:
                self._busy = None
                timer.cancel()
            if frame is None:
                self._proc = None
                raise self._died(proc)
            return str(msgspec.msgpack.decode(frame)["probe"])

    def parse(
        self,
        path: Path,
        file_name: str,
        *,
        html_main_content: bool,
        out_dir: Path | None = None,
    ) -> ParsedDocument:
        """Parse in the child. A mail's attachments are written into `out_dir`."""
        lim = self._limits
        request = {
            "file_name": file_name,
            "html_main_content": html_main_content,
            "ocr": lim.ocr,
            "ocr_page_cpu_s": max(1, int(lim.ocr_page_timeout_s)),
            "attachments": out_dir is not None,
            "cpu_s": lim.parse_cpu_s,
            "limits": {
                "max_pages": lim.max_pages,
                "max_unzipped_mb": lim.max_unzipped_mb,
                "max_text_mb": lim.max_text_mb,
                "max_cells": lim.max_cells,
                "max_attachments": lim.max_attachments,
                "max_mime_depth": lim.max_mime_depth,
            },
        }
        source = open_input(path)
        try:
            answer, proc = self._exchange(request, source)
        finally:
            os.close(source)  # also when the child could not start (Popen, mkdtemp)
        if answer.get("fatal"):
            proc.wait(5)
            raise ParseError(
                f"parsing needed more memory than ingest.parse_memory_mb={lim.parse_memory_mb}"
            )
        if "error" in answer:
            raise ParseError(str(answer["error"]))
        return ParsedDocument(
            content_type=answer["content_type"],
            sections=[
                Section(t, page=p, heading=h, location=loc) for t, p, h, loc in answer["sections"]
            ],
            pages=answer["pages"],
            metadata=dict(answer["metadata"]),
            ocr_pages=list(answer["ocr_pages"]),
            attachments=write_attachments(out_dir, answer["attachments"]) if out_dir else [],
        )

    def _exchange(
        self, request: dict[str, Any], source: int
    ) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
        """Send `request` and the file open on `source` to the child; its answer, and it."""
        lim = self._limits
        with self._lock:
            self._why_killed = None
            self._ocr_page = None
            proc = self._child()
            assert proc.stdin is not None and proc.stdout is not None and self._files
            timer = self._arm(lim.parse_timeout_s, "timeout", proc)
            self._busy = proc
            try:
                frame = note = None
                if self._greeted(proc):
                    socket.send_fds(self._files, [b"f"], [source])
                    write_frame(proc.stdin, self._encoder.encode(request))
                    while True:
                        frame = self._read(proc)
                        note = msgspec.msgpack.decode(frame) if frame is not None else None
                        if not (isinstance(note, dict) and "page" in note and len(note) == 1):
                            break
                        timer.cancel()  # an OCR page starts: it gets its own allowance
                        self._ocr_page = int(note["page"])
                        timer = self._arm(lim.ocr_page_timeout_s, "ocr_timeout", proc)
            except (BrokenPipeError, OSError):
                frame = None
            finally:
                self._busy = None  # from here no kill can reach this child
                timer.cancel()
            if frame is None:
                self._proc = None
                raise self._died(proc)
            return (note if isinstance(note, dict) else {}), proc

    def _arm(self, seconds: float, why: str, proc: subprocess.Popen[bytes]) -> threading.Timer:
        timer = threading.Timer(seconds, self._kill, args=(why, proc))
        timer.daemon = True
        timer.start()
        return timer

    def _died(self, proc: subprocess.Popen[bytes]) -> Exception:
        code = proc.wait(10)
        lim = self._limits
        if self._why_killed == "cancelled":
            return ParseCancelled("parsing was cancelled")
        if self._why_killed == "ocr_timeout":
            return ParseError(
                f"OCR of page {self._ocr_page} took longer than "
                f"ingest.ocr_page_timeout_s={lim.ocr_page_timeout_s:g} s"
            )
        if self._why_killed == "oversized":
            return ParseError(
                f"the parser child sent an answer of more than {self._frame_limit // MiB} MiB "
                "(ingest.max_text_mb twice, plus ingest.max_unzipped_mb and slack): it was "
                "killed"
            )
        if self._why_killed == "timeout":
            return ParseError(
                f"parsing took longer than ingest.parse_timeout_s={lim.parse_timeout_s:g} s"
            )
        if code == -signal.SIGXCPU:
            return ParseError(
                f"parsing used more than ingest.parse_cpu_s={lim.parse_cpu_s} CPU seconds"
            )
        log.warning("parser child exited with %s", code)
        name = signal.Signals(-code).name if code < 0 else f"exit status {code}"
        return ParseError(
            f"the parser crashed on this file ({name}); memory limit "
            f"ingest.parse_memory_mb={lim.parse_memory_mb}"
        )
