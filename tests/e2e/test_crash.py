"""The crash test: ingest while the server is killed with SIGKILL at random moments.

Afterwards every document the API acknowledged (202) is indexed and searchable exactly
once: 0 lost, 0 duplicated, 0 orphan chunks. `CRASH_CYCLES` sets the number of kills:
8 in `make test` (CI's cut: every kill lands at a random moment of the same upload loop,
so 8 already kill mid-upload, mid-embedding of a large document and mid-resume),
50 in `make soak` (the issue's acceptance: three runs in a row).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import server_env
from tests.e2e.server import ServerProcess

CYCLES = int(os.environ.get("CRASH_CYCLES", "8"))
# Hang guards, not speed checks. The resumed work after the last kill is at most a few
# thousand chunks (~15 chunks/s alone: ~1 min at 8 kills); 120 s a kill leaves room for a
# CPU hog beside the suite. The test's own limit adds the kills (a few seconds each).
RESUME_WAIT_S = max(900, 120 * CYCLES)
pytestmark = [
    pytest.mark.e2e, pytest.mark.slow, pytest.mark.crash,
    pytest.mark.timeout(RESUME_WAIT_S + 60 * CYCLES + 600),
]  # fmt: skip
FILLER = (
    "Facilities staff log every visit in the building register, and the register is "
    "checked each month by the office manager. "
)


def small_doc(n: int) -> tuple[str, bytes]:
    text = f"# Room {n}\n\nThe door code of room {n} is QZ{n:05d}K.\n\n" + FILLER * 5
    return f"room-{n:05d}.md", text.encode()


def large_doc(n: int) -> tuple[str, bytes]:
    """About 40 chunks, ~3 s of embedding: a kill lands in the middle of it (150 chunks
    did too, but the suite then spent ~3 min embedding handbooks)."""
    parts = [f"# Handbook {n}\n\nThe handbook {n} code is HB{n:05d}X.\n"]
    parts += [f"\n## Part {i}\n\n" + FILLER * 8 for i in range(40)]
    return f"handbook-{n:05d}.md", "".join(parts).encode()


def code_of(name: str) -> str:
    n = int(name.split("-")[1].split(".")[0])
    return f"HB{n:05d}X" if name.startswith("handbook") else f"QZ{n:05d}K"


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    models_dir: Path, tmp_path: Path
) -> None:
    rng = random.Random(7)
    server = ServerProcess(server_env(tmp_path / "data", models_dir), tmp_path / "server.log")
    acknowledged: set[str] = set()
    counter = 0
    for _ in range(CYCLES):
        server.start()
        stop = threading.Event()

        def upload_until_killed(stop: threading.Event = stop) -> None:
            nonlocal counter
            while not stop.is_set():
                counter += 1
                files = [small_doc(counter * 10 + i) for i in range(3)]
                if counter % 3 == 0:
                    files.append(large_doc(counter))
                try:
                    # hang guard: an upload is journaled and acknowledged in milliseconds
                    with server.client(120) as client:
                        resp = client.post("/v1/documents", files=[("files", f) for f in files])
                except httpx.HTTPError:
                    return  # killed mid-request: not acknowledged
                if resp.status_code == 202:
                    acknowledged.update(name for name, _ in files)
                time.sleep(rng.uniform(0, 0.5))

        uploader = threading.Thread(target=upload_until_killed)
        uploader.start()
        time.sleep(rng.uniform(0.3, 4.0))
        assert server.proc is not None
        server.proc.kill()  # SIGKILL: no shutdown code runs
        server.proc.wait(30)  # hang guard: SIGKILL cannot be caught
        stop.set()
        uploader.join(180)  # hang guard: its request fails at once, the server is gone

    server.start()
    try:
        with server.client(120) as client:  # hang guard per request
            deadline = time.monotonic() + RESUME_WAIT_S
            while time.monotonic() < deadline:
                jobs = client.get("/v1/jobs").json()
                if all(j["state"] not in ("queued", "running") for j in jobs):
                    break
                time.sleep(0.5)
            docs: list[dict[str, Any]] = client.get("/v1/documents").json()["documents"]
            names = [d["file_name"] for d in docs]
            metrics = client.get("/metrics").text
            points = next(
                float(line.split()[-1]) for line in metrics.splitlines()
                if line.startswith("appliance_store_points ")
            )  # fmt: skip
            lost = sorted(acknowledged - set(names))
            unfound = []
            ids = {d["file_name"]: d["id"] for d in docs}
            for name in sorted(acknowledged & set(names)):
                # dense search cannot tell codes apart (hybrid retrieval is issue 12):
                # search within the document, its fact must come back
                body = {"query": f"the code {code_of(name)}", "top_k": 3,
                        "document_ids": [ids[name]]}  # fmt: skip
                hits = client.post("/v1/search", json=body).json()["hits"]
                if not any(code_of(name) in h["text"] for h in hits):
                    unfound.append(name)
    finally:
        server.stop()
    print(f"\ncrash test: {CYCLES} SIGKILLs, {len(acknowledged)} files acknowledged, "
          f"{len(docs)} documents, {points:.0f} points = {sum(d['chunks'] for d in docs)} "
          f"journaled chunks, {len(lost)} lost, {len(unfound)} not searchable")  # fmt: skip
    assert len(acknowledged) > CYCLES, "the test acknowledged too little to mean anything"
    assert not lost, f"{len(lost)} acknowledged documents lost: {lost[:5]}"
    assert len(names) == len(set(names)), "a document is listed twice"
    assert points == sum(d["chunks"] for d in docs), "orphan or duplicated chunks"
    assert not unfound, f"not searchable: {unfound[:5]}"
