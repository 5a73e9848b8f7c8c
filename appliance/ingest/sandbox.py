"""Parse files in a child process with memory, CPU and wall-clock limits.

A file that costs too much (a zip bomb, a quadratic HTML tree, a crafted PDF)
takes down only the child: the server's memory stays its own, the failure names
the limit, and the next file gets a fresh child. The limits are on resources, not
privileges: the child runs as the server's user (the systemd unit's sandboxing is
what confines both). One child is kept between files, so a
folder of small files pays the interpreter start once. `abort()` kills the child
(a cancelled job). Blocking: call `parse` from a thread.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec

from appliance.config.ingest import IngestSettings
from appliance.domain.types import Section
from appliance.ingest.parse_worker import read_frame, write_frame
from appliance.ingest.parsers import ParsedDocument, ParseError

log = logging.getLogger(__name__)


class ParseCancelled(Exception):
    """`abort()` stopped the parse (the job was cancelled)."""


def worker_env() -> dict[str, str]:
    """The child's environment: few malloc arenas (OCR's threads would each reserve a
    64 MiB arena of the capped address space) and one BLAS thread (numpy's, beside ONNX
    Runtime's own pool). A value the sysadmin set wins."""
    return {"MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1"} | dict(os.environ)


def worker_command(memory_mb: int) -> list[str]:
    if getattr(sys, "frozen", False):  # the PyInstaller bundle: its own entry point
        return [sys.executable, "parse-worker", str(memory_mb)]
    return [sys.executable, "-m", "appliance.ingest.parse_worker", str(memory_mb)]


class ParseSandbox:
    def __init__(self, limits: IngestSettings) -> None:
        self._limits = limits
        self._lock = threading.Lock()  # one file at a time
        self._proc: subprocess.Popen[bytes] | None = None
        self._why_killed: str | None = None
        self._busy: subprocess.Popen[bytes] | None = None  # the child parsing right now
        self._ocr_page: int | None = None  # the page being read by OCR, if any
        self._encoder = msgspec.msgpack.Encoder()

    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                worker_command(self._limits.parse_memory_mb),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
                env=worker_env(),
            )  # fmt: skip
        return self._proc

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
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

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
            "path": str(path),
            "file_name": file_name,
            "html_main_content": html_main_content,
            "ocr": lim.ocr,
            "ocr_page_cpu_s": max(1, int(lim.ocr_page_timeout_s)),
            "out_dir": str(out_dir) if out_dir else None,
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
        with self._lock:
            self._why_killed = None
            self._ocr_page = None
            proc = self._child()
            assert proc.stdin is not None and proc.stdout is not None
            timer = self._arm(lim.parse_timeout_s, "timeout", proc)
            self._busy = proc
            try:
                write_frame(proc.stdin, self._encoder.encode(request))
                while True:
                    frame = read_frame(proc.stdout)
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
            answer: dict[str, Any] = note if isinstance(note, dict) else {}
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
            attachments=list(answer["attachments"]),
        )

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
