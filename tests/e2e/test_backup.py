"""Backup while the server runs, restore into a fresh data dir: the same searches give
the same results; the archive holds no key in the clear; a damaged archive is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backup_factory import backup_tree, pack
from tests.conftest import REPO, server_env
from tests.docs_factory import FACTS, make_all
from tests.e2e.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUERIES = [*FACTS.values(), "printer", "backups kept", "generator"]
GENERATION_KEY = "sk-must-not-travel-in-backups"


def searches(server: ServerProcess) -> list[list[tuple[str, float, str]]]:
    with server.client() as client:
        out = []
        for q in QUERIES:
            hits = client.post("/v1/search", json={"query": q, "top_k": 5}).json()["hits"]
            out.append([(h["point_id"], round(h["score"], 5), h["text"]) for h in hits])
        return out


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        # hang guard: a backup or restore of a few documents takes seconds
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False, env=env,
    )  # fmt: skip


def test_backup_then_restore_gives_identical_search_results(
    models_dir: Path, tmp_path: Path
) -> None:
    env = server_env(tmp_path / "a", models_dir, APPLIANCE__GENERATION__API_KEY=GENERATION_KEY)
    first = ServerProcess(env, tmp_path / "a.log").start()
    archive = tmp_path / "backup.tar.gz"
    try:
        with first.client() as client:
            docs = make_all(tmp_path / "docs")
            job = client.post(
                "/v1/documents", files=[("files", (p.name, p.read_bytes())) for p in docs.values()]
            ).json()["job_id"]
            while client.get(f"/v1/jobs/{job}").json()["state"] in ("queued", "running"):
                time.sleep(0.1)
            listing: dict[str, Any] = client.get("/v1/documents").json()
        before = searches(first)
        # a link planted at the download's temporary name is refused, never written through
        sentinel = tmp_path / "sentinel"
        sentinel.write_text("not to be overwritten")
        (tmp_path / ".backup.tar.gz.part").symlink_to(sentinel)
        planted = cli(first.env, "backup", "--url", first.url, str(archive))
        assert planted.returncode == 1 and "refusing to write through it" in planted.stderr
        assert sentinel.read_text() == "not to be overwritten" and not archive.exists()
        (tmp_path / ".backup.tar.gz.part").unlink()
        made = cli(first.env, "backup", "--url", first.url, str(archive))
        assert made.returncode == 0, made.stderr
        assert (archive.stat().st_mode & 0o777) == 0o600
        first_key = first.key
        with tarfile.open(archive) as tar:  # keys travel as hashes only
            names = tar.getnames()
            settings = tar.extractfile("./settings.json").read().decode()  # type: ignore[union-attr]
        assert "./secrets/keys.sqlite3" in names and "./secrets/admin.key" not in names
        assert GENERATION_KEY not in settings
        assert json.loads(settings)["generation"]["api_key"] == "<redacted>"
        refused = cli(first.env, "restore", "--url", first.url, str(archive))
        assert refused.returncode == 1 and "stop it" in refused.stderr
    finally:
        first.stop()

    second = ServerProcess(server_env(tmp_path / "b", models_dir), tmp_path / "b.log")
    second.data_dir.mkdir()
    (second.data_dir / "old.txt").write_text("previous data")
    restored = cli(second.env, "restore", "--url", second.url, str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "before-restore" in restored.stdout
    assert "a new admin key" in restored.stdout  # a new machine: the backup held none
    second.start()
    try:
        assert searches(second) == before
        with second.client() as client:  # with the new admin key
            assert client.get("/v1/documents").json() == listing
        # the first server's admin key is one of the restored keys: it works too
        assert second.key != first_key
        headers = {"Authorization": f"Bearer {first_key}"}
        keys = httpx.get(f"{second.url}/v1/keys", headers=headers, timeout=60)  # hang guard
        assert keys.status_code == 200
    finally:
        second.stop()


def test_a_damaged_archive_is_refused(models_dir: Path, tmp_path: Path) -> None:
    staging = tmp_path / "stage"
    staging.mkdir()
    (staging / "manifest.json").write_text('{"format": 1, "files": {"journal.sqlite3": "00"}}')
    (staging / "journal.sqlite3").write_text("not the file the manifest names")
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname=".")
    env = {**server_env(tmp_path / "c", models_dir)}
    result = cli({**os.environ, **env}, "restore", "--url", "http://127.0.0.1:9", str(archive))
    assert result.returncode == 1 and "differ from the manifest" in result.stderr
    assert not (tmp_path / "c").exists()


def test_a_server_started_during_a_restore_refuses_and_makes_no_fresh_data_dir(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`appliance serve` started (as systemd would) at the worst moment of a restore, the
    previous files moved aside and the restored ones not yet in, exits 1 on the data
    dir's lock; it never runs on the emptied data dir with a new admin key."""
    from appliance.restore import restore_backup

    backup_tree(tmp_path / "b")
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz")
    server = ServerProcess(server_env(tmp_path / "data", models_dir), tmp_path / "serve.log")
    server.data_dir.mkdir()
    (server.data_dir / "journal.sqlite3").write_bytes(b"the previous journal")
    started: list[subprocess.CompletedProcess[str]] = []

    def serve() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "appliance", "serve"], env=server.env, cwd=REPO,
            # hang guard: a server start and stop (seconds)
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    def then_serve(real: Any) -> Any:
        def rename(*args: Any, **kwargs: Any) -> None:
            real(*args, **kwargs)
            root = server.data_dir
            if not started and (not root.exists() or set(os.listdir(root)) <= {".lock"}):
                started.append(serve())

        return rename

    monkeypatch.setattr(os, "rename", then_serve(os.rename))
    monkeypatch.setattr(os, "replace", then_serve(os.replace))
    done = restore_backup(archive, server.data_dir, {})

    assert started, "the hook never ran between the two halves of the swap"
    assert started[0].returncode == 1, started[0].stderr[-2000:]
    assert "in use by a running appliance" in started[0].stderr + started[0].stdout
    assert "First start" not in started[0].stderr  # no admin key of its own
    assert done.admin_key == "new" and done.moved_aside is not None
    assert (server.data_dir / "journal.sqlite3").read_bytes() == b"the backup's journal"
