"""The hostile-file probes of issue 8 against a server with the shipped limits.

For each file: what the server answered, the reason, how long until the file was
refused or failed, and the server's peak RSS against its idle RSS (the parser runs
in a sandbox subprocess, so the server's own memory should not move). The server
must stay ready throughout.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import appliance_server  # noqa: E402
from tests.hostile_files import big_text, docx_bomb, many_pages_pdf, nested_html  # noqa: E402

MODELS = REPO / ".cache" / "models"
MiB = 1024 * 1024

PROBES: list[tuple[str, str, Callable[[Path], Path]]] = [
    ("DOCX bomb, 1 GiB inside", "bomb1.docx", lambda p: docx_bomb(p, 1024)),
    ("DOCX bomb, 2 GiB inside", "bomb2.docx", lambda p: docx_bomb(p, 2048)),
    ("HTML, 80k nested <div>", "deep80k.html", lambda p: nested_html(p, 80_000)),
    ("HTML, 160k nested <div>", "deep160k.html", lambda p: nested_html(p, 160_000)),
    ("text file, 99 MB", "huge.txt", lambda p: big_text(p, 94)),
    ("PDF, 99,000 pages", "pages.pdf", lambda p: many_pages_pdf(p, 99_000)),
]


def main() -> None:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        with appliance_server(root / "data", MODELS, root / "server.log") as srv:
            assert srv.proc is not None
            proc = psutil.Process(srv.proc.pid)
            idle = proc.memory_info().rss
            print(f"server idle RSS {idle / MiB:.0f} MiB; shipped [ingest] limits\n")
            print(f"{'probe':<26} {'upload':>6} {'file size':>10} {'outcome s':>9} "
                  f"{'peak RSS':>9} {'x idle':>6}  reason")  # fmt: skip
            with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=600) as client:
                for title, name, make in PROBES:
                    path = make(root / name)
                    peak = [proc.memory_info().rss]
                    stop = threading.Event()

                    def sample(peak: list[int] = peak, stop: threading.Event = stop) -> None:
                        while not stop.wait(0.05):
                            peak[0] = max(peak[0], proc.memory_info().rss)

                    sampler = threading.Thread(target=sample)
                    sampler.start()
                    start = time.monotonic()
                    with path.open("rb") as fh:
                        resp = client.post("/v1/documents", files=[("files", (name, fh))])
                    reason, ready = "", True
                    if resp.status_code == 202:
                        job_id = resp.json()["job_id"]
                        while True:
                            job = client.get(f"/v1/jobs/{job_id}").json()
                            ready = ready and client.get("/readyz").status_code == 200
                            if job["state"] not in ("queued", "running"):
                                break
                            time.sleep(0.2)
                        file = job["files"][0]
                        reason = file["error"] or f"{file['state']}, {file['chunks_done']} chunks"
                    else:
                        reason = resp.json().get("detail", resp.text)
                    took = time.monotonic() - start
                    stop.set()
                    sampler.join()
                    print(f"{title:<26} {resp.status_code:>6} {path.stat().st_size / MiB:>8.1f}MB "
                          f"{took:>9.1f} {peak[0] / MiB:>7.0f}MB {peak[0] / idle:>6.2f}  "
                          f"{reason[:90]}{'' if ready else ' (NOT READY during it)'}")  # fmt: skip
                    path.unlink()
    print(f"\n(hostile.py: {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
