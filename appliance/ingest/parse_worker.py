"""The parser sandbox's child process: parses one file per request, within limits.

Started by `ingest/sandbox.py` as `python -P -m appliance.ingest.parse_worker MEMORY_MB
POLICY SOCKET_FD`, with an environment of its own (no server secret). First thing, before
importing any parser, it confines itself (`ingest/confine.py`: an unprivileged uid when
started as root, no new privileges, Landlock: the runtime read-only, its scratch directory
read-write, nothing else) and caps its address space (RLIMIT_AS); it reports what it
achieved in its first frame. It never opens the files it parses: each arrives as a file
descriptor over the unix socket SOCKET_FD (SCM_RIGHTS), and a mail's attachments go back
to the server inside the answer. Before each file it raises its CPU soft limit
(RLIMIT_CPU) to what it has used plus the file's allowance: a runaway parse is killed by
SIGXCPU. Requests and answers are msgpack frames (4-byte length, then the body) on stdin
and on a copy of stdout; fd 1 itself is pointed at stderr so a library's stray print
cannot corrupt the channel. Before the answer, the child may send progress frames
(`{"page": n}`: OCR of page n starts).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import msgspec

from appliance.ingest.confine import Policy, confine

MiB = 1024 * 1024


class FrameTooLarge(Exception):
    """A frame announced more bytes than its reader accepts (a subverted child)."""


def read_frame(stream: IO[bytes], limit: int | None = None) -> bytes | None:
    """The next frame's body; None at the end of the stream. A frame announcing more than
    `limit` bytes raises FrameTooLarge before anything is read or allocated for it."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    if limit is not None and size > limit:
        raise FrameTooLarge(f"a frame of {size} bytes (the limit is {limit})")
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


def handle(
    request: dict[str, Any],
    source: int,
    scratch: Path,
    report: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Parse the file open on `source`. Before each page read by OCR, `report` sends
    `{"page": n}` to the server (which re-arms its per-page wall-clock watchdog) and the CPU
    allowance grows by `ocr_page_cpu_s`. A mail's attachments are written into `scratch`,
    then sent back as `[name, bytes]` pairs (the server writes them where they belong)."""
    from appliance.ingest.reader import Limits, ParseError, ParseOptions, parse_file

    _allow_cpu(int(request["cpu_s"]))

    def on_page(number: int) -> None:
        _allow_cpu(int(request["ocr_page_cpu_s"]))
        report({"page": number})

    out_dir = scratch / "attachments"
    shutil.rmtree(out_dir, ignore_errors=True)
    options = ParseOptions(
        html_main_content=bool(request["html_main_content"]),
        ocr=request["ocr"],
        out_dir=out_dir if request["attachments"] else None,
        on_page=on_page,
    )
    try:
        parsed = parse_file(
            source, request["file_name"], options=options, limits=Limits(**request["limits"])
        )
        attachments = [[name, (out_dir / name).read_bytes()] for name in parsed.attachments]
    except ParseError as exc:
        return {"error": str(exc)}
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "content_type": parsed.content_type,
        "pages": parsed.pages,
        "sections": [[s.text, s.page, s.heading, s.location] for s in parsed.sections],
        "metadata": parsed.metadata,
        "ocr_pages": parsed.ocr_pages,
        "attachments": attachments,
    }


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Try to open `path` (for writing if `write`) as a parser could: "ok" or the errno
    name. `doctor` and the tests check the confinement so, from outside."""
    flags = os.O_WRONLY | os.O_APPEND if request.get("write") else os.O_RDONLY
    try:
        os.close(os.open(request["probe"], flags | os.O_CLOEXEC))
    except OSError as exc:
        return {"probe": errno.errorcode.get(exc.errno or 0, str(exc.errno))}
    return {"probe": "ok"}


def receive_file(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if len(fds) != 1:
        raise OSError(errno.EBADMSG, "no file descriptor came with the request")
    return fds[0]


def main(argv: list[str] | None = None) -> None:
    memory_mb, policy_text, socket_fd = (sys.argv[1:] if argv is None else argv)[:3]
    policy = Policy.loads(policy_text)
    scratch = Path(policy.write[0])
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    encoder = msgspec.msgpack.Encoder()
    try:
        confined = confine(policy)
    except OSError as exc:  # a step the kernel offers failed: never parse unconfined
        write_frame(channel, encoder.encode({"confined": None, "error": str(exc)}))
        os._exit(4)
    memory = int(memory_mb) * MiB
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails instead
    write_frame(channel, encoder.encode({"confined": asdict(confined)}))
    files = socket.socket(fileno=int(socket_fd))
    requests = sys.stdin.buffer
    while (frame := read_frame(requests)) is not None:
        request = msgspec.msgpack.decode(frame)
        if "probe" in request:
            write_frame(channel, encoder.encode(probe(request)))
            continue
        source = receive_file(files)
        try:
            answer = handle(
                request, source, scratch, lambda note: write_frame(channel, encoder.encode(note))
            )
        except MemoryError:
            write_frame(channel, encoder.encode({"error": "memory", "fatal": True}))
            os._exit(3)  # the heap may be in any state: start a fresh child
        except Exception as exc:  # a parser bug on a hostile file: fail the file
            answer = {"error": f"the parser failed: {type(exc).__name__}: {exc}"}
        finally:
            os.close(source)
        write_frame(channel, encoder.encode(answer))


if __name__ == "__main__":
    main()
