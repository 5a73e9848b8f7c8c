"""Ingestion resumed after a SIGKILL vs a fresh server, on the same texts (issue 20, item 3).

One run: a fresh server ingests three ~150-chunk documents; a second server on its own data
dir gets the same upload, is SIGKILLed once the first document is embedding, and restarts:
the first document resumes from its journaled chunk texts, the other two are parsed then.
Prints chunks/s of each and the ratio resumed/fresh (acceptance: >= 0.8).

`--busy`: one CPU-bound process at nice 0 runs beside each server, as any other work on the
machine would (a parse child, a backup, another service): llama.cpp's threads, niced by
`models.thread_nice`, spin at their barriers while one of them waits for its core.
`--nice N` sets `models.thread_nice` (default: the config's, 10).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import Server, appliance_server  # noqa: E402
from bench.serve_load import MODELS  # noqa: E402

FILLER = (
    "Facilities staff log every visit in the building register, and the register is "
    "checked each month by the office manager. "
)


def handbook(n: int) -> tuple[str, bytes]:
    parts = [f"# Handbook {n}\n\nThe handbook {n} code is HB{n:05d}X.\n"]
    parts += [f"\n## Part {i} of {n}\n\n" + FILLER * 8 for i in range(150)]
    return f"handbook-{n:05d}.md", "".join(parts).encode()


DOCS = [handbook(n) for n in range(3)]


def files(server: Server) -> list[dict[str, Any]]:
    jobs = httpx.get(server.url + "/v1/jobs", headers=server.headers, timeout=30).json()
    return [f for job in jobs for f in job["files"]]


def upload(server: Server) -> None:
    resp = httpx.post(server.url + "/v1/documents", headers=server.headers, timeout=60,
                      files=[("files", d) for d in DOCS])  # fmt: skip
    resp.raise_for_status()


def chunks_per_s(server: Server) -> float:
    """Chunks embedded per second from now until every file is done."""
    t0, done0 = time.monotonic(), sum(f["chunks_done"] for f in files(server))
    while True:
        now = files(server)
        if all(f["state"] not in ("queued", "running") for f in now):
            break
        if time.monotonic() - t0 > 1800:
            raise RuntimeError(f"not done after 30 min: {now}")
        time.sleep(0.25)
    return (sum(f["chunks_total"] for f in now) - done0) / (time.monotonic() - t0)


def settings() -> dict[str, str]:
    if "--nice" in sys.argv:
        return {"models__thread_nice": sys.argv[sys.argv.index("--nice") + 1]}
    return {}


def fresh(work: Path) -> float:
    with appliance_server(work / "fresh", MODELS, work / "fresh.log", **settings()) as server:
        upload(server)
        return chunks_per_s(server)


def resumed(work: Path) -> float:
    data = work / "resumed"
    server = appliance_server(data, MODELS, work / "resumed.log", **settings()).__enter__()
    assert server.proc is not None
    upload(server)
    while files(server)[0]["chunks_done"] < 32:  # the first document is embedding
        time.sleep(0.1)
    server.proc.kill()  # SIGKILL: no shutdown code runs
    server.proc.wait(30)
    with appliance_server(data, MODELS, work / "resumed.log", **settings()) as again:
        return chunks_per_s(again)


def main() -> None:
    import tempfile

    from appliance.models.locate import prepare_default_chat, prepare_default_embedding

    prepare_default_chat(MODELS)
    prepare_default_embedding(MODELS)
    busy = "--busy" in sys.argv
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rate_fresh = fresh(Path(tmp))
            rate_resumed = resumed(Path(tmp))
    finally:
        if hog is not None:
            hog.kill()
    what = "beside one busy nice-0 process" if busy else "idle machine"
    what += f", thread_nice {settings().get('models__thread_nice', 'as configured')}"
    print(f"ingestion after a SIGKILL ({what}; 3 documents, 453 chunks)")
    print(f"fresh server      {rate_fresh:6.1f} chunks/s")
    print(f"resumed server    {rate_resumed:6.1f} chunks/s")
    print(f"resumed/fresh     {rate_resumed / rate_fresh:6.2f}")


if __name__ == "__main__":
    main()
