"""Check a backup archive member by member, then unpack it into a fresh directory.

Nothing in the archive is trusted, not even its manifest: every member's header is
read (nothing written) and the whole archive is refused at the first member that is
not a regular file or a folder, whose name is not a clean relative path under the
archive's one top folder `.`, that appears twice, that no appliance backup holds, or
that the manifest does not list with its size. Only then are the members written, one
by one, below a directory descriptor: folders 0700, files 0600 created with
O_EXCL | O_NOFOLLOW, owner and mode never taken from the archive, each file's SHA-256
computed while it is written and compared with the manifest's.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import IO

import msgspec

from appliance.runtime.files import CREATE_NEW, DIR_NOFOLLOW
from appliance.store.active_index import INDEX_FILE

MANIFEST = "manifest.json"
FORMAT = 1
TOP_FILES = frozenset({MANIFEST, "journal.sqlite3", INDEX_FILE, "settings.json"})
TOP_FOLDERS = frozenset({"edge", "qdrant", "uploads", "secrets"})
SECRET_FILES = frozenset({"keys.sqlite3", "admin.key"})  # admin.key: archives before 0.2
MAX_MEMBERS = 100_000
MAX_DEPTH = 32
MAX_MANIFEST_BYTES = 16 << 20
NAME_MAX = 255
BLOCK = 1 << 20
MAX_READ = 32 << 20  # the manifest's bound, and more than any block read here
READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)
Owner = tuple[int, int]

_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a device node",
    tarfile.BLKTYPE: "a device node",
    tarfile.FIFOTYPE: "a FIFO",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


class RestoreError(Exception):
    """The archive cannot be restored; the message says why (and names the member)."""


class BoundedGzip(gzip.GzipFile):
    """The archive's gzip stream, read at most MAX_READ bytes at a time: tarfile reads a
    pax or GNU long-name header whole, so one claiming gigabytes (a few MiB once
    compressed) is refused instead of filling memory."""

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_READ:
            raise RestoreError(f"a tar header or read of more than {MAX_READ >> 20} MiB: refused")
        return super().read(size)


class ModelEntry(msgspec.Struct):
    role: str
    file: str
    sha256: str


class Manifest(msgspec.Struct):
    format: int
    files: dict[str, str]  # relative name -> SHA-256
    models: list[ModelEntry] = []
    sizes: dict[str, int] | None = None  # relative name -> bytes (archives since 0.2)


@dataclass
class CheckedArchive:
    manifest: Manifest
    members: list[tuple[str, tarfile.TarInfo]] = field(default_factory=list)
    total_bytes: int = 0


def shown(name: str) -> str:
    """A member name safe to print on a terminal (control characters escaped)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


def _refuse(member: tarfile.TarInfo, why: str) -> RestoreError:
    return RestoreError(f"member {shown(member.name)}: {why}: the archive is refused")


def _relative(member: tarfile.TarInfo) -> str:
    """`./a/b` -> `a/b`, `.` -> `` (the top folder), or refused."""
    name = member.name
    if name.startswith("/"):
        raise _refuse(member, "an absolute path")
    parts = name.split("/")
    if ".." in parts:
        raise _refuse(member, "goes up a folder (..)")
    if name == ".":
        return ""
    if parts[0] != "." or any(p in ("", ".") for p in parts[1:]):
        raise _refuse(member, "not a clean path under the archive's top folder `.`")
    if len(parts) - 1 > MAX_DEPTH:
        raise _refuse(member, f"nested deeper than {MAX_DEPTH} folders")
    if any(len(os.fsencode(p)) > NAME_MAX for p in parts):
        raise _refuse(member, f"a name longer than {NAME_MAX} bytes")
    return "/".join(parts[1:])


def _is_folder(member: tarfile.TarInfo) -> bool:
    if member.type == tarfile.DIRTYPE:
        return True
    if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and member.sparse is None:
        return False
    kind = _KINDS.get(member.type, f"a member of tar type {member.type!r}")
    if member.sparse is not None:  # a pax GNU.sparse map: its size is made up of holes
        kind = "a sparse file"
    raise _refuse(member, f"{kind}: a backup holds only files and folders")


def _check_known(member: tarfile.TarInfo, relative: str, folder: bool) -> None:
    """Only what `write_backup` writes: an unknown member refuses the whole archive."""
    parts = relative.split("/")
    if relative == "":
        known = folder
    elif len(parts) == 1:
        known = parts[0] in (TOP_FOLDERS if folder else TOP_FILES)
    elif parts[0] == "secrets":
        known = len(parts) == 2 and not folder and parts[1] in SECRET_FILES
    else:
        known = parts[0] in TOP_FOLDERS
    if not known:
        raise _refuse(member, "not part of an appliance backup")


class _Tree:
    """The names seen so far: no duplicates, nothing inside a file."""

    def __init__(self) -> None:
        self.kinds: dict[str, bool] = {"": True}  # name -> is a folder
        self.named: set[str] = set()

    def add(self, member: tarfile.TarInfo, relative: str, folder: bool) -> None:
        if relative in self.named:
            raise _refuse(member, "appears twice")
        self.named.add(relative)
        if relative == "":
            return
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if not self.kinds.setdefault(parent, True):
                raise _refuse(member, f"inside {shown(parent)}, which is a file")
        if self.kinds.get(relative, folder) != folder:
            raise _refuse(member, "a file and a folder of the same name")
        self.kinds[relative] = folder


def check_archive(tar: tarfile.TarFile, label: str) -> CheckedArchive:
    """Every member's header and the manifest, before anything is written."""
    tree = _Tree()
    manifest: Manifest | None = None
    members: list[tuple[str, tarfile.TarInfo]] = []
    try:
        for member in tar:
            if len(members) >= MAX_MEMBERS:
                raise RestoreError(f"{label}: more than {MAX_MEMBERS} members: refused")
            relative = _relative(member)
            folder = _is_folder(member)
            _check_known(member, relative, folder)
            tree.add(member, relative, folder)
            members.append((relative, member))
            if relative == MANIFEST:
                manifest = _read_manifest(tar, member)
    except READ_ERRORS as exc:
        raise RestoreError(f"{label}: not a readable backup archive ({exc})") from exc
    if manifest is None:
        raise RestoreError(f"{label}: no {MANIFEST}: not an appliance backup")
    checked = CheckedArchive(manifest, members)
    _check_against_manifest(checked)
    return checked


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Manifest:
    if member.size > MAX_MANIFEST_BYTES:
        raise _refuse(member, f"larger than {MAX_MANIFEST_BYTES >> 20} MiB")
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    try:
        manifest = msgspec.json.decode(source.read(), type=Manifest)
    except msgspec.DecodeError as exc:
        raise _refuse(member, f"not a backup manifest ({exc})") from None
    if manifest.format != FORMAT:
        raise _refuse(member, f"backup format {manifest.format} unknown (this one reads {FORMAT})")
    return manifest


def _check_against_manifest(checked: CheckedArchive) -> None:
    """The archive's files are exactly the manifest's, each of the size it says."""
    manifest = checked.manifest
    sizes = manifest.sizes
    if sizes is not None and set(sizes) != set(manifest.files):
        raise RestoreError(f"{MANIFEST}: its sizes and its files name different files: refused")
    files = {}
    for relative, member in checked.members:
        if member.type == tarfile.DIRTYPE or relative == MANIFEST:
            continue
        if relative not in manifest.files:
            raise _refuse(member, f"not in {MANIFEST}")
        if sizes is not None and member.size != sizes[relative]:
            raise _refuse(member, f"{member.size} bytes where {MANIFEST} says {sizes[relative]}")
        files[relative] = member
        checked.total_bytes += member.size
    missing = sorted(set(manifest.files) - set(files))
    if missing:
        raise RestoreError(
            f"{MANIFEST} lists {shown(missing[0])}, which the archive lacks: refused"
        )


def _mkdir(parent_fd: int, name: str, owner: Owner | None) -> None:
    try:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    except FileExistsError:
        return  # made earlier as a parent of a member listed before its folder
    fd = os.open(name, DIR_NOFOLLOW, dir_fd=parent_fd)
    try:
        os.fchmod(fd, 0o700)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


def _open_folder(root_fd: int, parts: list[str], owner: Owner | None) -> int:
    """A descriptor of the folder `parts` below `root_fd`, made (0700) where missing."""
    fd = os.dup(root_fd)
    for part in parts:
        try:
            _mkdir(fd, part, owner)
            child = os.open(part, DIR_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _write_file(
    source: IO[bytes], folder_fd: int, name: str, owner: Owner | None
) -> tuple[int, str]:
    fd = os.open(name, CREATE_NEW, 0o600, dir_fd=folder_fd)
    digest = hashlib.sha256()
    written = 0
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o600)
        if owner is not None:
            os.fchown(fd, *owner)
        while block := source.read(BLOCK):
            digest.update(block)
            out.write(block)
            written += len(block)
    return written, digest.hexdigest()


def extract(
    tar: tarfile.TarFile, checked: CheckedArchive, root_fd: int, owner: Owner | None
) -> None:
    """Write the checked members below `root_fd` (a fresh, empty folder)."""
    for relative, member in checked.members:
        if relative == "":
            continue
        *parents, leaf = relative.split("/")
        try:
            folder_fd = _open_folder(root_fd, parents, owner)
            try:
                if member.type == tarfile.DIRTYPE:
                    _mkdir(folder_fd, leaf, owner)
                    continue
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                written, digest = _write_file(source, folder_fd, leaf, owner)
            finally:
                os.close(folder_fd)
        except READ_ERRORS as exc:
            raise _refuse(member, f"cannot be unpacked ({exc})") from exc
        if written != member.size:
            raise _refuse(member, f"{written} bytes where its header says {member.size}")
        if relative != MANIFEST and digest != checked.manifest.files[relative]:
            raise _refuse(member, f"contents differ from the manifest (sha256 {digest[:12]})")
