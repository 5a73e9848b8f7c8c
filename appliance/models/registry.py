"""Models a sysadmin added (`appliance models add`), and which one each role uses.

`<models_dir>/registry.json` lists each added GGUF (copied into models_dir, so the
service user can read it under ProtectHome) with its role, size and SHA-256, and names
the active chat and embedding model. A `[models]` setting of "default" resolves to the
active registered model of its role when there is one (checked against its recorded
checksum at start), else to the shipped default. A path in the config still wins.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.runtime.files import READ_NOFOLLOW, Directory, Owner, open_named_file, sha256_file

REGISTRY = "registry.json"
ROLES = ("chat", "embedding")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODEL_MODE = 0o644  # the service user reads it (and the probe child, from its descriptor)


class RegistryError(Exception):
    """A registry operation cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Registered:
    name: str
    file: str  # inside models_dir
    role: str
    sha256: str
    bytes: int
    architecture: str
    added: str


@dataclass
class Staged:
    """A model copied into the models dir under a temporary name (`.NAME.gguf.part`,
    created O_EXCL | O_NOFOLLOW), hashed, not yet registered. `fd` is the copy itself:
    the probe reads it through that descriptor, never by its name."""

    directory: Directory
    name: str
    part: str
    fd: int
    sha256: str
    bytes: int
    committed: bool = False


@dataclass
class Registry:
    directory: Path
    models: dict[str, Registered]
    active: dict[str, str]  # role -> name

    @classmethod
    def load(cls, directory: Path) -> Registry:
        path = directory / REGISTRY
        try:  # the models dir is the service user's: never read through a link as root
            fd = os.open(path, READ_NOFOLLOW)
        except FileNotFoundError:
            return cls(directory, {}, {})
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RegistryError(f"{path}: a symbolic link, not the registry") from None
            raise
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RegistryError(f"{path}: not a regular file")
            data = json.loads(fh.read())
        models = {name: Registered(**entry) for name, entry in data.get("models", {}).items()}
        return cls(directory, models, dict(data.get("active", {})))

    def _open_directory(self) -> Directory:
        """The models dir, refused if it is a symbolic link (its parent, the data dir, is
        the service user's: a link there would send root's writes anywhere)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return Directory(self.directory)

    def save(self) -> None:
        with self._open_directory() as directory:
            self._save(directory)

    def _save(self, directory: Directory) -> None:
        data = {
            "models": {name: asdict(entry) for name, entry in sorted(self.models.items())},
            "active": self.active,
        }
        owner = self._service_owner()
        if owner is not None:  # root made the models dir: the service user's, as its parent
            os.fchown(directory.fd, *owner)
        text = json.dumps(data, indent=2) + "\n"
        directory.write_replacing(REGISTRY, text.encode(), 0o644, owner)

    def _service_owner(self) -> Owner | None:
        """Run as root (`sudo appliance models add`), what it writes goes to the owner of
        the data dir (the service user), which must rewrite the registry at a switch."""
        if os.geteuid() != 0:
            return None
        owner = self.directory.parent.stat()
        return owner.st_uid, owner.st_gid

    def check_new(self, name: str, role: str) -> None:
        if not NAME.match(name):
            raise RegistryError(
                f"name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)"
            )
        if role not in ROLES:
            raise RegistryError(f"role {role!r}: one of {', '.join(ROLES)}")
        if name in self.models:
            raise RegistryError(f"a model named {name!r} is already registered")

    @contextlib.contextmanager
    def staging(self, source: Path, name: str, role: str) -> Iterator[Staged]:
        """Copy `source` (hashing as it goes) to `.NAME.gguf.part` in the models dir;
        `commit` it inside the block, else the copy is removed at its end."""
        self.check_new(name, role)
        with self._open_directory() as directory:
            src = open_named_file(source)
            try:
                part = f".{name}.gguf.part"
                fd = directory.create(part)
                staged: Staged | None = None
                try:
                    digest, size = _copy_hashing(src, fd)
                    os.fchmod(fd, MODEL_MODE)
                    staged = Staged(directory, name, part, fd, digest, size)
                    yield staged
                finally:
                    if staged is None or not staged.committed:
                        directory.discard(part)
                    os.close(fd)
            finally:
                os.close(src)

    def commit(self, staged: Staged, role: str, architecture: str) -> Registered:
        """Rename the staged copy to `NAME.gguf` and record it."""
        entry = Registered(
            name=staged.name, file=f"{staged.name}.gguf", role=role, sha256=staged.sha256,
            bytes=staged.bytes, architecture=architecture,
            added=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )  # fmt: skip
        owner = self._service_owner()
        staged.directory.publish(staged.fd, staged.part, entry.file, MODEL_MODE, owner)
        staged.committed = True
        self.models[staged.name] = entry
        self._save(staged.directory)
        return entry

    def add(self, source: Path, name: str, role: str, architecture: str) -> Registered:
        """Copy `source` into the models dir (hashing as it goes) and record it."""
        with self.staging(source, name, role) as staged:
            return self.commit(staged, role, architecture)

    def use(self, name: str) -> Registered:
        entry = self.models.get(name)
        if entry is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise RegistryError(f"no registered model {name!r} (registered: {known})")
        self.active[entry.role] = name
        self.save()
        return entry

    def active_path(self, role: str, verify: bool = True) -> Path | None:
        """The verified file of the active model of `role`, or None when none is set."""
        name = self.active.get(role)
        return None if name is None else self.path_of(name, verify)

    def path_of(self, name: str, verify: bool = True) -> Path:
        """The file of registered model `name`, checked against its recorded SHA-256."""
        entry = self.models[name]
        path = self.directory / entry.file
        if not path.is_file():
            raise RegistryError(f"{path}: the {entry.role} model {name!r} is missing")
        if not verify:
            return path
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise RegistryError(
                f"{path}: corrupt model: SHA-256 {digest} does not match the {entry.sha256} "
                f"recorded by `appliance models add`"
            )
        return path


def _copy_hashing(src: int, dst: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while block := os.read(src, 1 << 20):
        digest.update(block)
        size += len(block)
        view = memoryview(block)
        while view:
            view = view[os.write(dst, view) :]
    return digest.hexdigest(), size
