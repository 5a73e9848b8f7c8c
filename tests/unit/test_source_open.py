"""A synced folder's files are opened from the root's directory fd, one name at a time,
never through a symlink, and only if they are still the file the walk saw (real files,
real syscalls)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.ingest.source_root import SourceError, identities, open_root, protected_folders
from appliance.ingest.source_walk import (
    ChangedFile,
    Entry,
    next_batch,
    open_dir,
    open_file,
    shown,
    walk,
)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    share = tmp_path / "share"
    (share / "sub").mkdir(parents=True)
    (share / "sub" / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("the key")
    fd = os.open(share, os.O_RDONLY | os.O_DIRECTORY)
    yield share, fd
    os.close(fd)


def entry_of(share: Path, relative: str) -> Entry:
    st = (share / relative).lstat()
    return Entry(relative, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def test_the_file_the_walk_saw_is_opened(root: tuple[Path, int]) -> None:
    share, fd = root
    [seen] = next_batch(walk(fd, ["*"], [], []), 10)
    assert seen == entry_of(share, "sub/a.txt")
    with os.fdopen(open_file(fd, seen), "rb") as f:
        assert f.read() == b"a"


def test_a_file_swapped_for_a_symlink_is_refused(root: tuple[Path, int]) -> None:
    share, fd = root
    seen = entry_of(share, "sub/a.txt")
    (share / "sub" / "a.txt").unlink()
    (share / "sub" / "a.txt").symlink_to(share.parent / "secret.txt")
    with pytest.raises(OSError) as refused:
        open_file(fd, seen)
    assert refused.value.errno == errno.ELOOP


def test_a_file_replaced_by_another_is_refused(root: tuple[Path, int]) -> None:
    share, fd = root
    seen = entry_of(share, "sub/a.txt")
    os.replace(share.parent / "secret.txt", share / "sub" / "a.txt")  # a hard link would do
    with pytest.raises(ChangedFile):
        open_file(fd, seen)


def test_a_fifo_is_refused_without_blocking(root: tuple[Path, int]) -> None:
    share, fd = root
    seen = entry_of(share, "sub/a.txt")
    (share / "sub" / "a.txt").unlink()
    os.mkfifo(share / "sub" / "a.txt")  # no writer: a blocking open would hang the scan
    with pytest.raises(ChangedFile):
        open_file(fd, seen)


def test_a_folder_swapped_for_a_symlink_is_not_entered(root: tuple[Path, int]) -> None:
    share, fd = root
    seen = entry_of(share, "sub/a.txt")
    elsewhere = share.parent / "elsewhere"
    (share / "sub").rename(elsewhere)
    (share / "sub").symlink_to(elsewhere)  # same file behind it: still refused
    with pytest.raises(OSError) as refused:
        open_file(fd, seen)
    assert refused.value.errno in (errno.ELOOP, errno.ENOTDIR)
    with pytest.raises(OSError):
        open_dir(fd, "sub")
    with pytest.raises(ChangedFile):
        open_dir(fd, "../share")


def test_protected_folders_are_refused_naming_the_field(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "secrets").mkdir(parents=True)
    (tmp_path / "link").symlink_to(data / "secrets")
    protected = protected_folders(data)
    for path in (data, data / "secrets", tmp_path / "link", Path("/proc/self"), Path("/dev")):
        with pytest.raises(SourceError) as refused:
            open_root(str(path), protected, "path")
        assert (refused.value.status, refused.value.field) == (400, "path")
        assert refused.value.detail.startswith("`path`: ")
    os.close(open_root(str(tmp_path), protected, "path"))  # holds the data dir: allowed


def test_the_walk_does_not_enter_a_protected_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "secrets").mkdir(parents=True)
    (data / "secrets" / "admin.txt").write_text("the key")
    (tmp_path / "notes.txt").write_text("notes")
    skip = identities(protected_folders(data))
    found = [e.path for e in next_batch(walk(tmp_path, ["*"], [], [], skip), 10)]
    assert found == ["notes.txt"]


def test_names_are_shown_without_control_characters() -> None:
    assert shown("a\x1b[2J/b\nc\u202e.txt") == "a[2J/bc.txt"
    assert shown("..") == "?"
