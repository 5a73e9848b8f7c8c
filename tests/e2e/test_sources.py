"""A synced folder through the real server and the real CLI: add files, scan, change one,
delete one, add one, scan again. Search then reflects exactly the folder: nothing stale,
no duplicates, and a changed file is searchable at every moment of its re-ingestion."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import server_env
from tests.e2e.server import REPO, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FILLER = " ".join(f"Paragraph {i} of the handbook says nothing in particular." for i in range(40))


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("share")
    (root / "policies").mkdir()
    (root / "policies" / "vpn.md").write_text("# VPN\nThe VPN gateway is called Borealis.\n")
    (root / "printers.txt").write_text("The printer on floor 3 is named Hermes.\n")
    (root / "canteen.txt").write_text("The canteen serves soup on Thursdays.\n")
    (root / ".hidden.txt").write_text("A hidden file nobody should index: Nimbus.\n")
    (root / "~$lock.docx").write_bytes(b"an Office lock file")
    (root / "setup.exe").write_bytes(b"MZ not a document")
    return root


@pytest.fixture(scope="module")
def server(
    models_dir: Path, share: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("sources-data")
    env = server_env(data, models_dir, APPLIANCE__SECURITY__RATE_LIMIT_PER_MINUTE="0")
    proc = ServerProcess(env, tmp_path_factory.mktemp("logs") / "server.log").start()
    yield proc
    proc.stop()


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APPLIANCE_API_KEY": server.key}
    return subprocess.run(
        [sys.executable, "-m", "appliance", "sources", "--url", server.url, *args],
        # hang guard: a CLI call; `scan --wait` ingests a few small files (seconds)
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def files_found(server: ServerProcess, query: str) -> list[str]:
    with server.client() as client:
        resp = client.post("/v1/search", json={"query": query, "top_k": 20})
        assert resp.status_code == 200, resp.text
        return [h["file_name"] for h in resp.json()["hits"]]


def documents(server: ServerProcess) -> dict[str, dict[str, Any]]:
    with server.client() as client:
        listed = client.get("/v1/documents").json()["documents"]
    names = [d["file_name"] for d in listed]
    assert len(names) == len(set(names)), f"duplicates: {names}"
    return {d["file_name"]: d for d in listed}


def last_scan(server: ServerProcess, source_id: str) -> dict[str, Any]:
    with server.client() as client:
        listed = client.get("/v1/sources").json()["sources"]
    [mine] = [s for s in listed if s["settings"]["id"] == source_id]
    report: dict[str, Any] = mine["last_scan"]
    return report


def test_bad_sources_are_refused_naming_the_field(server: ServerProcess, share: Path) -> None:
    with server.client() as client:
        resp = client.post("/v1/sources", json={"id": "x", "path": "relative/dir"})
        assert resp.status_code == 400 and "`path`" in resp.text, resp.text
        resp = client.post("/v1/sources", json={"id": "x", "path": str(share / "nope")})
        assert resp.status_code == 400 and "not a directory" in resp.text
        for own in (server.data_dir / "secrets", server.data_dir, Path("/proc/self")):
            resp = client.post("/v1/sources", json={"id": "x", "path": str(own)})
            assert resp.status_code == 400 and "`path`" in resp.text, resp.text
            assert "inside" in resp.json()["detail"], resp.text
        resp = client.post("/v1/sources", json={"id": "Bad Name!", "path": str(share)})
        assert resp.status_code == 400 and "id" in resp.text
        resp = client.post("/v1/sources/none/scan")
        assert resp.status_code == 404
        assert client.get("/readyz").status_code == 200


def test_the_whole_sync_cycle(server: ServerProcess, share: Path) -> None:
    added = cli(server, "add", "handbook", str(share))
    assert added.returncode == 0, added.stderr
    scanned = cli(server, "scan", "handbook")
    assert scanned.returncode == 0, scanned.stderr + scanned.stdout
    report = last_scan(server, "handbook")
    assert (report["state"], report["new"], report["deleted"]) == ("done", 3, 0), report
    docs = documents(server)
    assert set(docs) == {"policies/vpn.md", "printers.txt", "canteen.txt"}
    assert {d["source"] for d in docs.values()} == {"handbook"}
    assert "printers.txt" in files_found(server, "What is the printer on floor 3 called?")

    # A rescan with nothing changed costs a stat per file and changes nothing.
    assert cli(server, "scan", "handbook").returncode == 0
    report = last_scan(server, "handbook")
    assert (report["new"], report["changed"], report["unchanged"]) == (0, 0, 3), report
    assert report["job_ids"] == []

    # Change one (a longer file: many chunks, so re-ingesting it takes a while), delete one,
    # add one; watch the changed file's chunks while the scan runs.
    old_id = docs["printers.txt"]["id"]
    (share / "printers.txt").write_text(
        "The printer on floor 3 is now named Athena.\n" + FILLER * 6
    )
    (share / "canteen.txt").unlink()
    (share / "policies" / "wifi.txt").write_text("The guest Wi-Fi password changes monthly.\n")
    gaps: list[list[str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            found = files_found(server, "What is the printer on floor 3 called?")
            if "printers.txt" not in found:
                gaps.append(found)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        scanned = cli(server, "scan", "handbook")
    finally:
        stop.set()
        watcher.join()
    assert scanned.returncode == 0, scanned.stderr + scanned.stdout
    assert "1 new, 1 changed" in scanned.stdout and "1 deleted" in scanned.stdout
    assert gaps == [], "a changed file must be searchable throughout its re-ingestion"

    docs = documents(server)
    assert set(docs) == {"policies/vpn.md", "printers.txt", "policies/wifi.txt"}
    assert docs["printers.txt"]["id"] != old_id  # the new content replaced the old
    with server.client() as client:
        assert client.get(f"/v1/documents/{old_id}").status_code == 404
        texts = [
            h["text"]
            for h in client.post(
                "/v1/search", json={"query": "printer floor 3 name", "top_k": 50}
            ).json()["hits"]
        ]
    assert not any("Hermes" in t for t in texts), "stale chunks of the old version"
    assert any("Athena" in t for t in texts)
    assert "canteen.txt" not in files_found(server, "Which day is soup served in the canteen?")


def test_removing_a_source_deletes_its_documents(server: ServerProcess) -> None:
    listed = cli(server, "list")
    assert listed.returncode == 0 and "handbook" in listed.stdout
    removed = cli(server, "remove", "handbook")
    assert removed.returncode == 0, removed.stderr
    assert "3 documents deleted" in removed.stdout
    assert documents(server) == {}
    assert "no synced folders" in cli(server, "list").stdout
    time.sleep(0.1)
