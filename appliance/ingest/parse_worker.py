"""The parser sandbox's child process: parses one file per request, within limits.

Started by `ingest/sandbox.py` as `python -m appliance.ingest.parse_worker MEMORY_MB`.
It caps its own address space (RLIMIT_AS) before importing any parser, and before
each file raises its CPU soft limit (RLIMIT_CPU) to what it has used plus the file's
allowance: a runaway parse is killed by SIGXCPU. Requests and answers are msgpack
frames (4-byte length, then the body) on stdin and on a copy of stdout; fd 1 itself
is pointed at stderr so a library's stray print cannot corrupt the channel. Before the
answer, the child may send progress frames (`{"page": n}`: OCR of page n starts).
"""

from __future__ import annotations

import os
import resource
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec

MiB = 1024 * 1024


def read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def write_frame(stream: IO[bytes], body: bytes) -> None:
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _allow_cpu(seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (used + seconds, hard))


def handle(request: dict[str, Any], report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Parse one file. Before each page read by OCR, `report` sends `{"page": n}` to the
    server (which re-arms its per-page wall-clock watchdog) and the CPU allowance grows
    by `ocr_page_cpu_s`."""
    from appliance.ingest.reader import Limits, ParseError, ParseOptions, parse_file

    _allow_cpu(int(request["cpu_s"]))

    def on_page(number: int) -> None:
        _allow_cpu(int(request["ocr_page_cpu_s"]))
        report({"page": number})

    out_dir = request.get("out_dir")
    options = ParseOptions(
        html_main_content=bool(request["html_main_content"]),
        ocr=request["ocr"],
        out_dir=Path(out_dir) if out_dir else None,
        on_page=on_page,
    )
    try:
        parsed = parse_file(
            Path(request["path"]),
            request["file_name"],
            options=options,
            limits=Limits(**request["limits"]),
        )
    except ParseError as exc:
        return {"error": str(exc)}
    return {
        "content_type": parsed.content_type,
        "pages": parsed.pages,
        "sections": [[s.text, s.page, s.heading, s.location] for s in parsed.sections],
        "metadata": parsed.metadata,
        "ocr_pages": parsed.ocr_pages,
        "attachments": parsed.attachments,
    }


def main(argv: list[str] | None = None) -> None:
    memory_mb = int((sys.argv[1:] if argv is None else argv)[0])
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * MiB, memory_mb * MiB))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    encoder = msgspec.msgpack.Encoder()
    while (frame := read_frame(requests)) is not None:
        request = msgspec.msgpack.decode(frame)
        try:
            answer = handle(request, lambda note: write_frame(channel, encoder.encode(note)))
        except MemoryError:
            write_frame(channel, encoder.encode({"error": "memory", "fatal": True}))
            os._exit(3)  # the heap may be in any state: start a fresh child
        except Exception as exc:  # a parser bug on a hostile file: fail the file
            answer = {"error": f"the parser failed: {type(exc).__name__}: {exc}"}
        write_frame(channel, encoder.encode(answer))


if __name__ == "__main__":
    main()
