"""Models a sysadmin added (`appliance models add`), and which one each role uses.

`<models_dir>/registry.json` lists each added GGUF (copied into models_dir, so the
service user can read it under ProtectHome) with its role, size and SHA-256, and names
the active chat and embedding model. A `[models]` setting of "default" resolves to the
active registered model of its role when there is one (checked against its recorded
checksum at start), else to the shipped default. A path in the config still wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.fileutil import sha256_file, write_atomic

REGISTRY = "registry.json"
ROLES = ("chat", "embedding")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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
class Registry:
    directory: Path
    models: dict[str, Registered]
    active: dict[str, str]  # role -> name

    @classmethod
    def load(cls, directory: Path) -> Registry:
        path = directory / REGISTRY
        if not path.is_file():
            return cls(directory, {}, {})
        data = json.loads(path.read_text())
        models = {name: Registered(**entry) for name, entry in data.get("models", {}).items()}
        return cls(directory, models, dict(data.get("active", {})))

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data = {
            "models": {name: asdict(entry) for name, entry in sorted(self.models.items())},
            "active": self.active,
        }
        write_atomic(self.directory / REGISTRY, json.dumps(data, indent=2) + "\n")
        self._owned_by_service(self.directory, self.directory / REGISTRY)

    def _owned_by_service(self, *paths: Path) -> None:
        """Run as root (`sudo appliance models add`), give what it wrote to the owner of
        the data dir (the service user), which must rewrite the registry at a switch."""
        if os.geteuid() != 0:
            return
        owner = self.directory.parent.stat()
        for path in paths:
            os.chown(path, owner.st_uid, owner.st_gid)

    def add(self, source: Path, name: str, role: str, architecture: str) -> Registered:
        """Copy `source` into the models dir (hashing as it goes) and record it."""
        if not NAME.match(name):
            raise RegistryError(
                f"name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)"
            )
        if role not in ROLES:
            raise RegistryError(f"role {role!r}: one of {', '.join(ROLES)}")
        if name in self.models:
            raise RegistryError(f"a model named {name!r} is already registered")
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{name}.gguf"
        if source.resolve() == target.resolve():
            digest = sha256_file(source)
        else:
            digest = _copy_hashing(source, target)
        entry = Registered(
            name=name, file=target.name, role=role, sha256=digest,
            bytes=target.stat().st_size, architecture=architecture,
            added=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )  # fmt: skip
        self.models[name] = entry
        self.save()
        self._owned_by_service(target)
        return entry

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


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    tmp = target.with_name(f".{target.name}.part")
    with source.open("rb") as src, tmp.open("wb") as dst:
        while block := src.read(1 << 20):
            digest.update(block)
            dst.write(block)
    os.replace(tmp, target)
    shutil.copymode(source, target)
    target.chmod(0o644)
    return digest.hexdigest()
