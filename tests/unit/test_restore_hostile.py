"""`appliance restore` on crafted archives: each is refused, naming the member, before
anything is written (the folder around the data dir lists the same before and after);
a real backup's layout restores; the data dir's lock is held through the swap."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.restore import RestoreError, restore_backup
from appliance.runtime.files import DataDirBusy, lock_data_dir, unlock_data_dir
from appliance.security.key_store import KeyStore
from appliance.security.keys import Role
from tests.backup_factory import backup_tree, pack

Member = tuple[tarfile.TarInfo, bytes | None]


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o777 if kind == tarfile.DIRTYPE else 0o4755  # never taken from the archive
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def write_tar(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def listing(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every name below `root` (links not followed): mode, size, mtime, and the contents'
    hash for a file."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            st = path.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return seen


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """`site/data`: a data dir a server has run on; `site/flag`: a file outside it."""
    root = tmp_path / "site"
    data = root / "data"
    data.mkdir(parents=True)
    unlock_data_dir(lock_data_dir(data))
    (data / "journal.sqlite3").write_bytes(b"the previous journal")
    (root / "flag").write_text("outside the data dir")
    return root


def cve_2025_4517_chain(dest: Path) -> list[Member]:
    """The public pattern of CVE-2025-4517 (CPython's test_realpath_limit_attack): nested
    folder/symlink pairs whose resolved path passes PATH_MAX, so the `data` filter of
    Python < 3.11.13 stops resolving; a link back up through them; a hard link to a file
    outside; that link overwritten; a new file written outside. `dest`: where the archive
    is unpacked (the old code's staging folder)."""
    steps = "abcdefghijklmnop"
    top = "./uploads"
    dest_len = len(str(dest)) + len(top) + 2
    component = "d" * ((os.pathconf(dest.parent, "PC_PATH_MAX") - dest_len) // (len(steps) + 1))
    members = [member(top, tarfile.DIRTYPE)]
    path = top
    for step in steps:
        members.append(member(f"{path}/{component}", tarfile.DIRTYPE))
        members.append(member(f"{path}/{step}", tarfile.SYMTYPE, link=component))
        path = f"{path}/{component}"
    linkpath = "/".join([top, *steps, "l" * 254])
    members.append(member(linkpath, tarfile.SYMTYPE, link="/".join([".."] * len(steps))))
    # uploads/<link back to uploads>/../.. is the folder around the unpacking one
    members.append(
        member(f"{top}/escape", tarfile.SYMTYPE, link=linkpath[len(top) + 1 :] + "/../..")
    )
    members.append(member(f"{top}/flaglink", tarfile.LNKTYPE, link=f"{top}/escape/flag"))
    members.append(member(f"{top}/flaglink", data=b"overwritten"))
    members.append(member(f"{top}/escape/newfile", data=b"new"))
    return members


HOSTILE: dict[str, tuple[Callable[[Path], list[Member]], str]] = {
    # case: (its members, given the site folder; the member the refusal names)
    "dot-dot": (lambda site: [member("../flag", data=b"overwritten")], "../flag"),
    "dot-dot-inside": (
        lambda site: [member("./uploads/../../flag", data=b"x")],
        "./uploads/../../flag",
    ),
    "absolute": (
        lambda site: [member(f"{site}/flag", data=b"overwritten")],
        "{site}/flag",
    ),
    "symlink-then-file": (
        lambda site: [
            member("./uploads", tarfile.DIRTYPE),
            member("./uploads/out", tarfile.SYMTYPE, link=str(site)),
            member("./uploads/out/newfile", data=b"new"),
        ],
        "./uploads/out",
    ),
    "hardlink": (
        lambda site: [
            member("./uploads", tarfile.DIRTYPE),
            member("./uploads/hard", tarfile.LNKTYPE, link=str(site / "flag")),
            member("./uploads/hard", data=b"overwritten"),
        ],
        "./uploads/hard",
    ),
    "device": (
        lambda site: [
            member("./uploads", tarfile.DIRTYPE),
            member("./uploads/null", tarfile.CHRTYPE),
        ],
        "./uploads/null",
    ),
    "long-symlink-chain": (
        lambda site: cve_2025_4517_chain(site / f".data.restoring-{os.getpid()}"),
        "./uploads/a",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_crafted_archive_is_refused_naming_the_member_and_nothing_changes(
    case: str, site: Path, tmp_path: Path
) -> None:
    build, named = HOSTILE[case]
    archive = write_tar(tmp_path / f"{case}.tar.gz", build(site))
    before = listing(site)
    with pytest.raises(RestoreError) as refused:
        restore_backup(archive, site / "data", {})
    assert listing(site) == before  # nothing written outside, nor in the data dir
    assert f"member {named.format(site=site)}:" in str(refused.value)


def authenticates(secrets: Path, key: str) -> bool:
    async def check() -> bool:
        store = KeyStore(secrets)
        await store.start()
        try:
            record = store.authenticate(key)
            return record is not None and record.role is Role.ADMIN
        finally:
            await store.close()

    return asyncio.run(check())


def test_a_backup_restores_and_the_same_machine_keeps_its_admin_key(
    site: Path, tmp_path: Path
) -> None:
    data = site / "data"
    key = backup_tree(tmp_path / "b")
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz")
    (data / "models").mkdir()
    (data / "models" / "chat.gguf").write_bytes(b"GGUF")
    (data / "secrets").mkdir()
    (data / "secrets" / "admin.key").write_text(key + "\n")  # this machine made the backup
    lock_inode = (data / ".lock").stat().st_ino

    done = restore_backup(archive, data, {})

    assert done.admin_key == "kept" and (data / "secrets" / "admin.key").read_text() == key + "\n"
    assert (data / "journal.sqlite3").read_bytes() == b"the backup's journal"
    assert (data / "edge" / "documents" / "segment.bin").read_bytes() == (
        tmp_path / "b" / "edge" / "documents" / "segment.bin"
    ).read_bytes()
    assert not (data / "settings.json").exists()  # the config file stays the truth
    assert (data / "models" / "chat.gguf").read_bytes() == b"GGUF"  # stays in use
    assert (data / ".lock").stat().st_ino == lock_inode  # the lock never moved
    assert done.moved_aside is not None and done.moved_aside.parent == site
    assert (done.moved_aside / "journal.sqlite3").read_bytes() == b"the previous journal"
    for path in [data / "edge", data / "edge" / "documents", data / "uploads"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in [data / "journal.sqlite3", data / "uploads" / "waiting.txt"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert done.model_warnings == ["chat model chat.gguf is not on this machine"]
    assert [p.name for p in site.iterdir() if ".restoring-" in p.name] == []


def test_a_restore_on_a_new_machine_makes_a_new_admin_key_and_keeps_the_old_ones(
    tmp_path: Path,
) -> None:
    key = backup_tree(tmp_path / "b")
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz")
    data = tmp_path / "new" / "data"

    done = restore_backup(archive, data, {})

    made = (data / "secrets" / "admin.key").read_text().strip()
    assert done.admin_key == "new" and done.moved_aside is None and made != key
    assert stat.S_IMODE((data / "secrets" / "admin.key").stat().st_mode) == 0o600
    assert authenticates(data / "secrets", made) and authenticates(data / "secrets", key)


def test_an_archive_of_the_earlier_layout_restores(tmp_path: Path) -> None:
    """Archives made before this change carry admin.key and the plain settings, no sizes."""
    key = backup_tree(tmp_path / "b")
    (tmp_path / "b" / "secrets" / "admin.key").write_text(key + "\n")
    files = sorted(p for p in (tmp_path / "b").rglob("*") if p.is_file())
    manifest = {
        "format": 1,
        "files": {
            str(p.relative_to(tmp_path / "b")): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files
        },
        "models": [],
    }
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz", manifest)

    done = restore_backup(archive, tmp_path / "data", {})

    assert done.admin_key == "archive"
    assert (tmp_path / "data" / "secrets" / "admin.key").read_text() == key + "\n"


def tampered(root: Path, archive: Path, how: str) -> Path:
    backup_tree(root)
    if how == "unknown":
        (root / "models").mkdir()
        (root / "models" / "chat.gguf").write_bytes(b"GGUF")
    pack(root, archive)
    manifest = json.loads((root / "manifest.json").read_text())
    if how == "not-listed":
        del manifest["files"]["uploads/waiting.txt"], manifest["sizes"]["uploads/waiting.txt"]
    elif how == "size":
        manifest["sizes"]["journal.sqlite3"] = 3
    elif how == "contents":
        manifest["files"]["journal.sqlite3"] = "0" * 64
    (root / "manifest.json").write_text(json.dumps(manifest))
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname=".")
        if how == "twice":
            tar.add(root / "journal.sqlite3", arcname="./journal.sqlite3")
    return archive


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("unknown", "./models"),
        ("not-listed", "./uploads/waiting.txt"),
        ("size", "./journal.sqlite3"),
        ("contents", "./journal.sqlite3"),
        ("twice", "./journal.sqlite3"),
    ],
)
def test_an_archive_that_disagrees_with_its_manifest_is_refused(
    how: str, named: str, site: Path, tmp_path: Path
) -> None:
    archive = tampered(tmp_path / "b", tmp_path / "bad.tar.gz", how)
    before = listing(site)
    with pytest.raises(RestoreError) as refused:
        restore_backup(archive, site / "data", {})
    assert listing(site) == before
    assert f"member {named}:" in str(refused.value)


def test_a_refused_archive_leaves_no_data_dir_behind(tmp_path: Path) -> None:
    """Refused once unpacking began (a file's SHA-256): the data dir it had to make is gone."""
    archive = tampered(tmp_path / "b", tmp_path / "bad.tar.gz", "contents")
    with pytest.raises(RestoreError, match="contents differ from the manifest"):
        restore_backup(archive, tmp_path / "site" / "data", {})
    assert not (tmp_path / "site").exists() or list((tmp_path / "site").iterdir()) == []


class LockProbe:
    """At each rename the restore makes, what a server starting right then finds: its
    data dir's lock 'busy' (it refuses; systemd restarts it), 'free' (it would run), or
    the data dir 'missing' (it would make a fresh one, with a new admin key)."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.seen: list[str] = []

    def wrap(self, real: Callable[..., None]) -> Callable[..., None]:
        def rename(*args: Any, **kwargs: Any) -> None:
            real(*args, **kwargs)
            if not self.data.is_dir():
                self.seen.append("missing")
                return
            try:
                unlock_data_dir(lock_data_dir(self.data))  # what `appliance serve` does first
            except DataDirBusy:
                self.seen.append("busy")
            else:
                self.seen.append("free")

        return rename


def test_a_server_starting_during_the_swap_is_refused_and_then_finds_the_restored_data(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = site / "data"
    backup_tree(tmp_path / "b")
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz")
    lock_inode = (data / ".lock").stat().st_ino
    probe = LockProbe(data)
    monkeypatch.setattr(os, "rename", probe.wrap(os.rename))
    monkeypatch.setattr(os, "replace", probe.wrap(os.replace))

    restore_backup(archive, data, {})

    assert probe.seen and set(probe.seen) == {"busy"}, probe.seen
    assert (data / ".lock").stat().st_ino == lock_inode
    unlock_data_dir(lock_data_dir(data))  # free once restored
    assert (data / "journal.sqlite3").read_bytes() == b"the backup's journal"


def test_a_header_claiming_gigabytes_is_refused_before_it_is_read(
    site: Path, tmp_path: Path
) -> None:
    """tarfile reads a GNU long-name (or pax) header whole: one claiming 1 GiB."""
    header = tarfile.TarInfo("./journal.sqlite3")
    header.type = tarfile.GNUTYPE_LONGNAME
    header.size = 1 << 30
    archive = tmp_path / "huge-header.tar.gz"
    with gzip.open(archive, "wb") as out:
        out.write(header.tobuf(tarfile.USTAR_FORMAT) + bytes(1 << 20))
    before = listing(site)
    with pytest.raises(RestoreError, match="a tar header or read of more than 32 MiB"):
        restore_backup(archive, site / "data", {})
    assert listing(site) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="restore as root gives files to the data dir's owner")
def test_restore_as_root_gives_every_file_to_the_data_dirs_owner(
    site: Path, tmp_path: Path
) -> None:
    data = site / "data"
    backup_tree(tmp_path / "b")
    archive = pack(tmp_path / "b", tmp_path / "backup.tar.gz")
    service = (65534, 65534)  # nobody: the service user of a real install
    for path in [data, data / ".lock", data / "journal.sqlite3"]:
        os.chown(path, *service)

    done = restore_backup(archive, data, {})

    assert done.moved_aside is not None
    for root in [data, done.moved_aside]:
        owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [root, *root.rglob("*")]}
        assert owners == {service}, root
