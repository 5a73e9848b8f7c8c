"""Ingestion resumed after a SIGKILL vs a fresh server, on the same texts (issue 20, item 3).

One run: a fresh server ingests three ~150-chunk documents; a second server on its own data
dir gets the same upload, is SIGKILLed once the first document is embedding, and restarts:
the first document resumes from its journaled chunk texts, the other two are parsed then.
Prints chunks/s of each and the ratio resumed/fresh (acceptance: >= 0.8).

`--busy`: a nice-0 busy loop per CPU runs beside both servers (bench/contention.py's hog,
which also runs this case idle and busy in `make bench`).
`--nice N` sets `models.thread_nice` (default: the config's).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
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
WAITING = ("queued", "running")
GIVE_UP_S = 1800.0  # an ingest still running after 30 min is a hang, not a slow run
LISTED_S = 60.0  # a server that lists no job this long after the upload lost it


def handbook(n: int, parts: int = 150) -> tuple[str, bytes]:
    text = [f"# Handbook {n}\n\nThe handbook {n} code is HB{n:05d}X.\n"]
    text += [f"\n## Part {i} of {n}\n\n" + FILLER * 8 for i in range(parts)]
    return f"handbook-{n:05d}.md", "".join(text).encode()


DOCS = [handbook(n) for n in range(3)]


@dataclass
class Ingest:
    """Chunks embedded between the start of the wait and the last file's end."""

    chunks: int
    seconds: float
    not_done: int  # files that ended failed, skipped or cancelled

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0


def files(server: Server) -> list[dict[str, Any]]:
    resp = httpx.get(server.url + "/v1/jobs", headers=server.headers, timeout=30)
    resp.raise_for_status()
    return [f for job in resp.json() for f in job["files"]]


def upload(server: Server, docs: list[tuple[str, bytes]] = DOCS) -> None:
    resp = httpx.post(server.url + "/v1/documents", headers=server.headers, timeout=60,
                      files=[("files", d) for d in docs])  # fmt: skip
    resp.raise_for_status()


def ingest_until_done(server: Server) -> Ingest:
    """Chunks embedded from now until every file has ended (as /v1/jobs reports them)."""
    t0, done0 = time.monotonic(), sum(f["chunks_done"] for f in files(server))
    while True:
        now = files(server)
        if now and all(f["state"] not in WAITING for f in now):
            break
        if not now and time.monotonic() - t0 > LISTED_S:
            raise RuntimeError(f"no file listed in /v1/jobs after {LISTED_S:.0f} s")
        if time.monotonic() - t0 > GIVE_UP_S:
            raise RuntimeError(f"not done after {GIVE_UP_S:.0f} s: {now}")
        time.sleep(0.25)
    seconds = time.monotonic() - t0
    chunks = sum(f["chunks_total"] for f in now) - done0
    return Ingest(chunks, seconds, sum(1 for f in now if f["state"] != "done"))


def settings() -> dict[str, str]:
    if "--nice" in sys.argv:
        return {"models__thread_nice": sys.argv[sys.argv.index("--nice") + 1]}
    return {}


def fresh(work: Path, docs: list[tuple[str, bytes]] = DOCS) -> Ingest:
    with appliance_server(work / "fresh", MODELS, work / "fresh.log", **settings()) as server:
        upload(server, docs)
        return ingest_until_done(server)


def resumed(work: Path, docs: list[tuple[str, bytes]] = DOCS, kill_after: int = 32) -> Ingest:
    """SIGKILL once the first document has `kill_after` chunks embedded, restart, resume."""
    data = work / "resumed"
    server = appliance_server(data, MODELS, work / "resumed.log", **settings())
    with server:
        assert server.proc is not None
        upload(server, docs)
        t0 = time.monotonic()
        while (first := files(server)[0])["chunks_done"] < kill_after:
            if first["state"] not in WAITING:
                print(f"restart: {first['file_name']} ended ({first['state']}) before "
                      f"{kill_after} chunks: the kill hits a later file", file=sys.stderr)  # fmt: skip
                break
            if time.monotonic() - t0 > GIVE_UP_S:
                raise RuntimeError(f"no progress after {GIVE_UP_S:.0f} s: {first}")
            time.sleep(0.1)
        server.proc.kill()  # SIGKILL: no shutdown code runs
        server.proc.wait(30)
    with appliance_server(data, MODELS, work / "resumed.log", **settings()) as again:
        return ingest_until_done(again)


def main() -> None:
    import tempfile

    from appliance.models.locate import prepare_default_chat, prepare_default_embedding
    from bench.contention import hog_or_not

    prepare_default_chat(MODELS)
    prepare_default_embedding(MODELS)
    busy = "--busy" in sys.argv
    with hog_or_not(busy) as hogs, tempfile.TemporaryDirectory() as tmp:
        first = fresh(Path(tmp))
        again = resumed(Path(tmp))
    what = f"beside {len(hogs)} nice-0 busy loops" if busy else "idle machine"
    what += f", thread_nice {settings().get('models__thread_nice', 'as configured')}"
    print(f"ingestion after a SIGKILL ({what}; {len(DOCS)} documents, {first.chunks} chunks)")
    print(f"fresh server      {first.rate:6.1f} chunks/s")
    print(f"resumed server    {again.rate:6.1f} chunks/s ({again.chunks} chunks resumed)")
    print(f"resumed/fresh     {again.rate / first.rate:6.2f}")
    if first.not_done or again.not_done:
        print(f"files not done: fresh {first.not_done}, resumed {again.not_done}")


if __name__ == "__main__":
    main()
