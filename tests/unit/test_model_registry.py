"""`appliance models add | use | list`: real GGUF files, real llama.cpp in the child."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.models.locate import ModelError, resolve_model

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "APPLIANCE__STORAGE__DATA_DIR": str(data),
        "APPLIANCE__MODELS__MODELS_DIR": str(data / "models"),
    }
    return subprocess.run(
        [sys.executable, "-m", "appliance", "models", *args], cwd=REPO, env=env,
        # hang guard: a models command reads GGUF headers or copies a small model (seconds)
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture
def data(tmp_path: Path, models_dir: Path) -> Path:
    """A data dir whose models dir holds the prepared defaults, as a server's would."""
    (tmp_path / "models").mkdir()
    for model in models_dir.glob("*.gguf"):
        shutil.copy2(model, tmp_path / "models" / model.name)
    return tmp_path


def test_add_checks_and_records_then_use_switches_the_default(data: Path, chat_model: Path) -> None:
    added = cli(data, "add", str(chat_model), "--name", "smol-b")
    assert added.returncode == 0, added.stderr
    assert "chat model (llama" in added.stdout and "sha256" in added.stdout
    assert "fits:" in added.stdout
    copied = data / "models" / "smol-b.gguf"
    assert copied.read_bytes() == chat_model.read_bytes()
    listing = cli(data, "list")
    assert "smol-b" in listing.stdout and "chat" in listing.stdout
    # not active yet: "default" is still the shipped model
    assert resolve_model("default", "chat", data / "models").name != "smol-b.gguf"
    used = cli(data, "use", "smol-b")
    assert used.returncode == 0 and "Restart" in used.stdout
    assert resolve_model("default", "chat", data / "models") == copied
    # a changed byte is refused at start, naming the file and both digests
    damaged = bytearray(copied.read_bytes())
    damaged[-10] ^= 0x01
    copied.write_bytes(bytes(damaged))
    with pytest.raises(ModelError, match="corrupt model"):
        resolve_model("default", "chat", data / "models")


def test_add_refuses_what_is_not_a_loadable_gguf(data: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(200))
    run = cli(data, "add", str(junk))
    assert run.returncode == 1 and "junk.gguf" in run.stderr
    assert not (data / "models" / "registry.json").exists()
    missing = cli(data, "add", str(tmp_path / "nope.gguf"))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    unknown = cli(data, "use", "nothing")
    assert unknown.returncode == 1 and "no registered model 'nothing'" in unknown.stderr


def test_an_embedding_switch_is_refused_while_documents_are_indexed(
    data: Path, embedding_model: Path
) -> None:
    added = cli(data, "add", str(embedding_model), "--name", "minilm-b")
    assert added.returncode == 0 and "embedding model (bert" in added.stdout, added.stderr
    with sqlite3.connect(data / "journal.sqlite3") as conn:
        conn.execute("CREATE TABLE documents (id TEXT)")
        conn.execute("INSERT INTO documents VALUES ('d1')")
    refused = cli(data, "use", "minilm-b")
    assert refused.returncode == 1 and "1 documents" in refused.stderr
    (data / "journal.sqlite3").unlink()
    assert cli(data, "use", "minilm-b").returncode == 0


def test_a_start_refuses_an_index_of_another_embedding_model(
    data: Path, settings_for, embedding_model: Path, chat_model: Path
) -> None:  # type: ignore[no-untyped-def]
    from appliance.server.stores import live_index
    from appliance.store.active_index import read_active_index

    settings = settings_for(data)
    first = live_index(settings, embedding_model)  # a new index takes its model
    assert first.collection == "chunks" and first.embedding_sha256
    assert read_active_index(data, "chunks").embedding_sha256 == first.embedding_sha256
    # while the index is empty, another model simply takes over
    assert live_index(settings, chat_model).embedding_sha256 != first.embedding_sha256
    live_index(settings, embedding_model)
    with sqlite3.connect(data / "journal.sqlite3") as conn:
        conn.execute("CREATE TABLE documents (id TEXT)")
        conn.execute("INSERT INTO documents VALUES ('d1')")
    # with documents, the vectors' model must be the one loaded, whatever the config says
    with pytest.raises(ModelError, match="vectors of two models cannot be searched together"):
        live_index(settings, chat_model)
    assert live_index(settings, embedding_model).collection == "chunks"
