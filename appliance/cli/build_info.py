"""What this build of the appliance is: version, lock file hash, glibc floor.

The bundle carries `BUILD_INFO.json` beside its executable, written by `make bundle`
(packaging/build_info.py); a source checkout computes the same from its files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from appliance.models.bundled import bundle_root
from appliance.runtime.files import sha256_file

LOCK_FILE = "requirements.lock"
INFO_FILE = "BUILD_INFO.json"


@dataclass(frozen=True)
class BuildInfo:
    version: str
    lock_sha256: str  # of requirements.lock; "" when there is none
    bundle: bool
    min_glibc: str  # the highest GLIBC_ symbol version any ELF file of the bundle needs
    llama_build: str  # "portable (variants ...)" or "native"

    def line(self) -> str:
        where = "bundle" if self.bundle else "source"
        lock = f"lock sha256:{self.lock_sha256[:16]}" if self.lock_sha256 else "no lock file"
        glibc = f", needs glibc >= {self.min_glibc}" if self.min_glibc else ""
        return f"appliance {self.version} ({where}, {lock}, llama.cpp {self.llama_build}{glibc})"


def _version() -> str:
    try:
        return metadata.version("rag-appliance")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def read_build_info() -> BuildInfo:
    root = bundle_root()
    if root is not None and (root / INFO_FILE).is_file():
        data = json.loads((root / INFO_FILE).read_text())
        return BuildInfo(
            version=data["version"],
            lock_sha256=data["lock_sha256"],
            bundle=True,
            min_glibc=data["min_glibc"],
            llama_build=data["llama_build"],
        )
    from appliance.engine.cpu_backends import is_portable

    lock = Path(__file__).resolve().parent.parent / LOCK_FILE
    digest = sha256_file(lock) if lock.is_file() else ""
    return BuildInfo(
        version=_version(),
        lock_sha256=digest,
        bundle=False,
        min_glibc="",
        llama_build="portable" if is_portable() else "native",
    )
