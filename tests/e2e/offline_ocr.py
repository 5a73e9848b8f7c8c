"""Run inside a network namespace with only loopback (see test_offline_ocr.py): check
that the network is unreachable, start the real server, ingest a scanned PDF, search its
fact, and print what happened as JSON on the last line of stdout."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from tests.conftest import server_env
from tests.e2e.server import ServerProcess
from tests.format_files import FACTS, scanned_pdf


def network_blocked() -> bool:
    try:
        # no network in the namespace: refused at once; 3 s bounds a black-holed route
        socket.create_connection(("1.1.1.1", 443), timeout=3).close()
    except OSError:
        return True
    return False


def main(work: Path, models_dir: Path) -> None:
    report: dict[str, object] = {"network_blocked": network_blocked()}
    proc = ServerProcess(server_env(work / "data", models_dir), work / "server.log").start()
    try:
        pdf = scanned_pdf(work / "contract-scan.pdf")
        with proc.client(120) as client:  # hang guard per request
            resp = client.post(
                "/v1/documents", files=[("files", (pdf.name, pdf.read_bytes()))]
            ).json()
            deadline = time.monotonic() + 600  # hang guard: OCR of two pages, ~20 s alone
            while time.monotonic() < deadline:
                job = client.get(f"/v1/jobs/{resp['job_id']}").json()
                if job["state"] not in ("queued", "running"):
                    break
                time.sleep(0.3)
            report["file"] = job["files"][0]
            hits = client.post("/v1/search", json={"query": FACTS["scan"][2], "top_k": 3}).json()[
                "hits"
            ]
            report["hits"] = [{k: h[k] for k in ("file_name", "page", "text")} for h in hits]
    finally:
        proc.stop()
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
