"""What the service user can plant in its own data dir while the server runs, met by
`appliance restore` run as root afterwards (and by the server's own start): a `.lock`
linked to a file outside, a FIFO or a link at a model's name. Nothing outside the data
dir changes owner, mode or contents, nothing is created through a link, nothing hangs.
Also: a restore writes its staging tree as root alone until it gives it away, and a
store file named manifest.json (below the top folder) survives a backup round-trip."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.restore import RestoreError, model_warnings, restore_backup
from appliance.restore.admin_key import provide_admin_key
from appliance.restore.archive import Manifest, ModelEntry
from appliance.runtime.files import PlantedFileError, lock_data_dir, sha256_file, unlock_data_dir
from appliance.server.backup import archive_staging
from tests.backup_factory import backup_tree, pack

SERVICE = (65534, 65534)  # nobody: the service user of a real install
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="what root does with the service's files")


class Hung(Exception):
    """The guard's alarm went off: the call blocked."""


@pytest.fixture
def hang_guard() -> Iterator[None]:
    """Turns a call that would block forever (an open or read of a FIFO) into a failure.
    Not a performance assertion: 20 s is far past any time these calls take."""

    def ring(signum: int, frame: object) -> None:
        raise Hung("blocked (on a FIFO?)")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """`site/data`: the service user's data dir a server has run on; `site/shadow`: a
    root file outside it (0640, as /etc/shadow)."""
    root = tmp_path / "site"
    data = root / "data"
    data.mkdir(parents=True)
    unlock_data_dir(lock_data_dir(data))
    (data / "journal.sqlite3").write_bytes(b"the previous journal")
    shadow = root / "shadow"
    shadow.write_text("root:$6$secret:19000:0:99999:7:::\n")
    shadow.chmod(0o640)
    if os.geteuid() == 0:
        for path in [data, data / ".lock", data / "journal.sqlite3"]:
            os.chown(path, *SERVICE)
    return root


def state(path: Path) -> tuple[int, int, int, bytes]:
    found = path.lstat()
    return found.st_uid, found.st_gid, found.st_mode, path.read_bytes()


def plant_lock(data: Path, how: str, target: Path) -> None:
    """What the service user can do to its own `.lock` while its server runs."""
    (data / ".lock").unlink()
    if how == "symlink":
        (data / ".lock").symlink_to(target)
        if os.geteuid() == 0:
            os.lchown(data / ".lock", *SERVICE)
    elif how == "hardlink":  # (with fs.protected_hardlinks off)
        os.link(target, data / ".lock")
    else:
        os.mkfifo(data / ".lock", 0o600)


@as_root
@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_restore_refuses_a_lock_file_linked_to_a_file_outside_and_leaves_that_file_alone(
    how: str, site: Path, tmp_path: Path
) -> None:
    data, shadow = site / "data", site / "shadow"
    backup_tree(tmp_path / "b")
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz")
    plant_lock(data, how, shadow)
    before = state(shadow)

    with pytest.raises(RestoreError, match=r"data/\.lock: .* where the data dir's lock file"):
        restore_backup(archive, data, {})

    assert state(shadow) == before  # not given to the service user
    assert (data / "journal.sqlite3").read_bytes() == b"the previous journal"


@as_root
def test_restore_creates_nothing_through_a_lock_file_linked_to_a_missing_path(
    site: Path, tmp_path: Path
) -> None:
    data, preload = site / "data", site / "ld.so.preload"
    backup_tree(tmp_path / "b")
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz")
    plant_lock(data, "symlink", preload)

    with pytest.raises(RestoreError, match=r"data/\.lock: a symbolic link"):
        restore_backup(archive, data, {})

    assert not os.path.lexists(preload)


@pytest.mark.parametrize("how", ["symlink", "hardlink", "fifo"])
def test_the_server_start_refuses_a_planted_lock_file(how: str, site: Path) -> None:
    data, shadow = site / "data", site / "shadow"
    plant_lock(data, how, shadow)
    before = state(shadow)

    with pytest.raises(PlantedFileError, match=r"data/\.lock: .* where the data dir's lock file"):
        unlock_data_dir(lock_data_dir(data))

    assert state(shadow) == before
    assert (data / ".lock").is_symlink() == (how == "symlink")  # left as it was found


def test_a_store_file_named_manifest_json_is_archived_and_restored(tmp_path: Path) -> None:
    """Only the top folder's manifest.json is the backup's own."""
    staging = tmp_path / "staging"
    backup_tree(staging)
    (staging / "edge" / "x").mkdir(parents=True)
    (staging / "edge" / "x" / "manifest.json").write_text('{"a store file": true}')
    header: dict[str, Any] = {"format": 1, "models": []}
    archive = archive_staging(staging, tmp_path, "stamp", header)

    restore_backup(archive, tmp_path / "data", {})

    restored = tmp_path / "data" / "edge" / "x" / "manifest.json"
    assert restored.read_text() == '{"a store file": true}'


@as_root
def test_restore_writes_its_staging_tree_as_root_alone_until_it_gives_it_away(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the admin key is written (by path, through the key store), nothing in the
    staging tree is the service user's: it could not swap a folder for a link there."""
    data = site / "data"
    backup_tree(tmp_path / "b")
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz")
    owners: dict[str, set[int]] = {}

    def spying(staging: Path, *args: Any) -> str:
        owners["staging"] = {p.lstat().st_uid for p in [staging, *staging.rglob("*")]}
        owners["mode"] = {stat.S_IMODE(staging.lstat().st_mode)}
        return provide_admin_key(staging, *args)

    monkeypatch.setattr("appliance.restore.provide_admin_key", spying)

    restore_backup(archive, data, {})

    assert owners == {"staging": {0}, "mode": {0o700}}
    given = {(p.lstat().st_uid, p.lstat().st_gid) for p in [data, *data.rglob("*")]}
    assert given == {SERVICE}  # then all of it is the service user's


def test_sha256_file_refuses_a_fifo_without_blocking(tmp_path: Path, hang_guard: None) -> None:
    os.mkfifo(tmp_path / "model.gguf")
    with pytest.raises(PlantedFileError, match="not a regular file"):
        sha256_file(tmp_path / "model.gguf")


@as_root
def test_a_model_planted_as_a_fifo_or_a_link_is_warned_about_not_read(
    tmp_path: Path, hang_guard: None
) -> None:
    """The models folder is the service user's: a FIFO at the chat model's name would
    hang a restore reading it; its link to a root file would be read as root."""
    models = tmp_path / "models"
    models.mkdir()
    os.mkfifo(models / "chat.gguf")
    outside = tmp_path / "root-only.gguf"
    outside.write_bytes(b"GGUF root's file")
    (models / "embed.gguf").symlink_to(outside)
    os.lchown(models / "embed.gguf", *SERVICE)
    manifest = Manifest(
        format=1,
        files={},
        models=[
            ModelEntry("chat", "chat.gguf", "0" * 64),
            ModelEntry("embedding", "embed.gguf", hashlib.sha256(outside.read_bytes()).hexdigest()),
        ],
    )

    warnings = model_warnings(
        manifest, {"chat": models / "chat.gguf", "embedding": models / "embed.gguf"}
    )

    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("the chat model is not checked:")
    assert "not a regular file" in warnings[0]
    assert warnings[1].startswith("the embedding model is not checked:")
    assert "a symbolic link of uid 65534" in warnings[1]
    (models / "embed.gguf").unlink()
    (models / "embed.gguf").write_bytes(outside.read_bytes())  # a real file of the same bytes
    assert model_warnings(manifest, {"embedding": models / "embed.gguf"}) == [
        "chat model chat.gguf is not on this machine"
    ]
