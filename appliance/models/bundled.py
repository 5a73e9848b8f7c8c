"""The default models shipped in the bundle: `<bundle>/models/` and its manifest.

`make bundle` copies the prepared default GGUF files next to the executable and writes
`models/manifest.json` (file name -> SHA-256 and size). At start the files are checked
against it; a corrupt or altered model is refused with the file and both digests,
before llama.cpp reads a byte of it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.runtime.files import sha256_file

MANIFEST = "manifest.json"


class BundleModelError(Exception):
    """A shipped model is missing or does not match the manifest."""


def bundle_root() -> Path | None:
    """The bundle's directory (beside the executable) when running from the bundle."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent
    return None


def bundled_models_dir(root: Path | None = None) -> Path | None:
    """`<bundle>/models` when it holds a manifest, else None (a source checkout)."""
    base = root if root is not None else bundle_root()
    if base is None:
        return None
    directory = base / "models"
    return directory if (directory / MANIFEST).is_file() else None


def write_manifest(directory: Path) -> dict[str, dict[str, object]]:
    """Record the SHA-256 and size of every GGUF in `directory` (at build time)."""
    entries: dict[str, dict[str, object]] = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(directory.glob("*.gguf"))
    }
    (directory / MANIFEST).write_text(json.dumps(entries, indent=2) + "\n")
    return entries


def verified(directory: Path, name: str, verify: bool = True) -> Path:
    """The path of shipped model `name` after checking it against the manifest (its size
    only with `verify=False`)."""
    manifest = json.loads((directory / MANIFEST).read_text())
    entry = manifest.get(name)
    path = directory / name
    if entry is None:
        raise BundleModelError(f"{path}: not listed in {directory / MANIFEST}")
    if not path.is_file():
        raise BundleModelError(f"{path}: missing from the bundle; reinstall it")
    if path.stat().st_size != entry["bytes"]:
        raise BundleModelError(
            f"{path}: corrupt model: {path.stat().st_size} bytes, the manifest says "
            f"{entry['bytes']}; reinstall the bundle"
        )
    if not verify:
        return path
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise BundleModelError(
            f"{path}: corrupt model: SHA-256 {digest} does not match the manifest's "
            f"{entry['sha256']}; reinstall the bundle"
        )
    return path


if __name__ == "__main__":  # make bundle: python -m appliance.models.bundled DIR
    for file_name, entry in write_manifest(Path(sys.argv[1])).items():
        print(f"{entry['sha256']}  {file_name}")
