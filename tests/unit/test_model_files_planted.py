"""`appliance models add/use` run as root write into the models dir, which the service
user owns: a link it planted at a name root is about to write is refused, and the file
it points to keeps its bytes, mode and owner. Real files and real syscalls."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appliance.models.registry import Registry

SECRET = b"root's own file\n"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    directory = tmp_path / "data" / "models"
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the models dir that a planted link points at."""
    path = tmp_path / "victim"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "incoming.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return path


def untouched(victim: Path, before: os.stat_result) -> bool:
    now = victim.stat()
    return (
        victim.read_bytes() == SECRET
        and stat.S_IMODE(now.st_mode) == stat.S_IMODE(before.st_mode)
        and (now.st_uid, now.st_gid) == (before.st_uid, before.st_gid)
    )


def test_a_link_planted_at_the_part_name_is_refused(
    models: Path, victim: Path, source: Path
) -> None:
    before = victim.stat()
    (models / ".smol.gguf.part").symlink_to(victim)
    with pytest.raises(OSError, match=r"\.smol\.gguf\.part"):
        Registry.load(models).add(source, "smol", "chat", "llama")
    assert untouched(victim, before)
    assert (models / ".smol.gguf.part").is_symlink()  # left as found, for the sysadmin
    assert not (models / "smol.gguf").exists() and not (models / "registry.json").exists()


def test_a_link_planted_at_the_registry_temp_name_is_refused(models: Path, victim: Path) -> None:
    before = victim.stat()
    (models / f".registry.json.{os.getpid()}.tmp").symlink_to(victim)
    registry = Registry.load(models)
    registry.active["chat"] = "smol"
    with pytest.raises(OSError, match=r"\.registry\.json\.\d+\.tmp"):
        registry.save()
    assert untouched(victim, before)
    assert not (models / "registry.json").exists()


def test_a_models_dir_that_is_a_link_is_refused(tmp_path: Path, source: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "models").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link"):
        Registry.load(tmp_path / "data" / "models").add(source, "smol", "chat", "llama")
    assert list(elsewhere.iterdir()) == []


def test_a_leftover_part_of_an_interrupted_add_is_replaced(models: Path, source: Path) -> None:
    (models / ".smol.gguf.part").write_bytes(b"half a model")
    entry = Registry.load(models).add(source, "smol", "chat", "llama")
    assert (models / "smol.gguf").read_bytes() == source.read_bytes()
    assert entry.bytes == source.stat().st_size
    assert not (models / ".smol.gguf.part").exists()
    assert Registry.load(models).models["smol"].sha256 == entry.sha256


@pytest.mark.skipif(os.geteuid() != 0, reason="a link of another user matters to root only")
def test_root_follows_no_link_of_another_user_to_the_source(
    tmp_path: Path, models: Path, victim: Path, source: Path
) -> None:
    planted = models / "look-at-me.gguf"
    planted.symlink_to(victim)
    os.lchown(planted, 12345, 12345)  # as the service user would have made it
    with pytest.raises(OSError, match="symbolic link of uid 12345"):
        Registry.load(models).add(planted, "look", "chat", "llama")
    assert not (models / "look.gguf").exists()
    admins = tmp_path / "admins-link.gguf"  # root's own link is the sysadmin's word
    admins.symlink_to(source)
    Registry.load(models).add(admins, "fine", "chat", "llama")
    assert (models / "fine.gguf").read_bytes() == source.read_bytes()


@pytest.mark.slow
def test_the_probe_of_an_untrusted_gguf_runs_unprivileged(chat_model: Path) -> None:
    from appliance.cli.model_registry import _probe_in_child
    from appliance.ingest.confine import unprivileged_ids

    expected = unprivileged_ids()[0] if os.geteuid() == 0 else os.getuid()
    probed = _probe_in_child(chat_model)
    assert probed["loaded"] and probed.get("no_new_privs") is True
    assert probed.get("uid") == expected  # as root: not root (nobody here)


@pytest.mark.slow
@pytest.mark.parametrize("role", ["chat", "embedding"])
def test_preparing_a_default_model_writes_through_no_planted_link(
    role: str, models: Path, victim: Path, models_dir: Path
) -> None:
    from appliance.models import locate

    (models / "wheels").mkdir()
    for wheel in (models_dir / "wheels").glob("*.whl"):
        (models / "wheels" / wheel.name).symlink_to(wheel)  # the sysadmin's offline copy
    file = locate.CHAT_FILE if role == "chat" else locate.EMBED_FILE
    before = victim.stat()
    for temporary in (f".{file}.part", f"{file}.tmp", Path(file).with_suffix(".part").name):
        (models / temporary).symlink_to(victim)  # whatever name the writer picks
    prepare = locate.prepare_default_chat if role == "chat" else locate.prepare_default_embedding
    with pytest.raises(OSError, match="symbolic link"):
        prepare(models)
    assert untouched(victim, before)
    assert not (models / file).exists()
