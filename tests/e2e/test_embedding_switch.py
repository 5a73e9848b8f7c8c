"""Switching the embedding model on a live server: re-embed into a new collection, swap,
and keep it across a restart. Real server, real models, real Qdrant Edge.

The second embedding model is the default MiniLM GGUF added under another name (the
only embedding GGUF on PyPI here): same vectors, but everything the switch does runs
for real (a second model on its own thread, a new collection, the swap, index.json,
the registry, the retired collection removed at the next start)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import server_env
from tests.docs_factory import make_md
from tests.e2e.server import REPO, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def upload(client: httpx.Client, name: str, text: str, collection: str = "default") -> str:
    job = client.post(
        "/v1/documents", files=[("files", (name, text.encode()))], data={"collection": collection}
    ).json()["job_id"]
    while (state := client.get(f"/v1/jobs/{job}").json())["state"] in ("queued", "running"):
        time.sleep(0.1)
    assert state["state"] == "done", state
    document_id: str = state["files"][0]["document_id"]
    return document_id


def found(client: httpx.Client, query: str, collection: str | None = None) -> set[str]:
    body: dict[str, object] = {"query": query, "top_k": 10}
    if collection:
        body["filters"] = {"collections": [collection]}
    hits = client.post("/v1/search", json=body).json()["hits"]
    return {h["file_name"] for h in hits}


def test_switch_reembeds_swaps_and_survives_a_restart(
    models_dir: Path, embedding_model: Path, tmp_path: Path
) -> None:
    own_models = tmp_path / "models"  # the registry must not touch the shared models dir
    own_models.mkdir()
    for model in models_dir.glob("*.gguf"):
        shutil.copy2(model, own_models / model.name)
    env = server_env(tmp_path / "data", own_models)
    server = ServerProcess(env, tmp_path / "server.log").start()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "appliance", "models", *args], cwd=REPO, env=server.env,
            # hang guard: `models use` re-embeds a few small documents (seconds)
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    try:
        with server.client() as client:
            md = make_md(tmp_path / "backups.md")
            upload(client, "backups.md", md.read_text())
            gone_id = upload(client, "printers.md", "# Printers\n\nThe printer is HP-4100.\n")
            assert client.post("/v1/collections", json={"name": "hr"}).status_code == 201
            upload(client, "leave.md", "# Leave\n\nLeave requests use form L-7.\n", "hr")
            added = cli("add", str(embedding_model), "--name", "minilm-b")
            assert added.returncode == 0, added.stderr
            switched = cli("use", "minilm-b", "--url", server.url, "--key", server.key)
            assert switched.returncode == 0, switched.stdout + switched.stderr
            assert "re-embedding 3 documents" in switched.stdout and "switched" in switched.stdout
            status = client.get("/v1/models/embedding").json()
            assert status["state"] == "done" and status["collection"] == "chunks__minilm-b"
            assert status["documents_done"] == 3 and status["chunks_done"] >= 3
            assert {"backups.md", "printers.md"} <= found(client, "backups printer")
            # each chunk keeps its collection through the switch
            assert found(client, "backups printer leave", "hr") == {"leave.md"}
            assert "leave.md" not in found(client, "leave requests form", "default")
            # after the swap: uploads, deletes and answers use the new collection
            upload(client, "vpn.md", "# VPN\n\nThe VPN gateway is vpn-gw-3.\n")
            assert "vpn.md" in found(client, "VPN gateway")
            assert client.delete(f"/v1/documents/{gone_id}").status_code in (200, 204)
            assert "printers.md" not in found(client, "printer HP-4100")
            answer = client.post("/v1/ask", json={"query": "What is the VPN gateway?"})
            assert answer.status_code == 200
            # a second switch to the same model is refused, and unknown models are named
            again = client.post("/v1/models/embedding", json={"name": "minilm-b"})
            assert again.status_code == 409, again.text
            unknown = client.post("/v1/models/embedding", json={"name": "nothing"})
            assert unknown.status_code == 404 and "nothing" in unknown.text
        assert server.stop() == 0
        data = Path(env["APPLIANCE__STORAGE__DATA_DIR"])
        assert (data / "edge" / "chunks").is_dir()  # kept until the next start
        server = ServerProcess(env, tmp_path / "server2.log").start()
        with server.client() as client:
            assert client.get("/v1/models/embedding").json()["collection"] == "chunks__minilm-b"
            assert {"backups.md", "vpn.md"} <= found(client, "backups VPN gateway")
            assert "printers.md" not in found(client, "printer HP-4100")
        assert not (data / "edge" / "chunks").exists()  # the retired collection is gone
        listing = cli("list")
        assert "minilm-b" in listing.stdout and "yes" in listing.stdout
    finally:
        server.stop()
