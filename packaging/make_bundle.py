"""`make bundle`: dist/appliance/ (PyInstaller one-folder) and its tarball.

Steps, each failing loudly:
1. PyInstaller builds build.spec with the portable llama.cpp libraries
   ($APPLIANCE_LLAMA_LIBS, see packaging/build_llama_portable.sh).
2. The build's warn file is read: a missing module of ours, or one that our code
   imports at top level, fails the build.
3. The default models go to dist/appliance/models/ with a SHA-256 manifest.
4. Every ELF file is audited: the instruction sets (packaging/isa_audit.py, in
   parallel, afresh; each file's result kept by the sha256 of its bytes, for the
   installed bundle's audit in tests/bundle) and the highest GLIBC_ symbol version
   (objdump -T), recorded in BUILD_INFO.json.
5. install.sh, uninstall.sh, the systemd unit and the default config join the folder,
   and dist/appliance-<version>-linux-x86_64.tar.gz is written.

Usage: python packaging/make_bundle.py  (from the repository root, in the venv)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

from glibc_audit import glibc_floor  # packaging/ is this script's sys.path[0]
from isa_audit import BUNDLE_RUNTIME_SELECTED

REPO = Path(__file__).resolve().parent.parent

DIST = REPO / "dist"
BUNDLE = DIST / "appliance"
WORK = REPO / "build" / "pyinstaller"
MODELS_CACHE = REPO / ".cache" / "models"
SHIPPED = ("install.sh", "uninstall.sh", "layout.sh", "appliance.service")


def version() -> str:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def run_pyinstaller() -> None:
    libs = os.environ.get("APPLIANCE_LLAMA_LIBS", "")
    if not Path(libs, "libllama.so").is_file():
        sys.exit("make_bundle: APPLIANCE_LLAMA_LIBS must name the portable llama.cpp build")
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
           "--distpath", str(DIST), "--workpath", str(WORK), str(REPO / "build.spec")]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=REPO)


MISSING = re.compile(r"^missing module named '?(?P<name>[^' ]+)'? - imported by (?P<by>.*)$")
# interpreter internals and setuptools' distutils shim, never imported by the bundle
NOT_RUNTIME = ("_frozen_importlib_external", "distutils.")


def excluded() -> list[str]:
    text = (REPO / "packaging" / "excludes.txt").read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def check_warnings(warn: Path = WORK / "build" / "warn-build.txt") -> list[str]:
    """Missing modules that exist in the build environment, i.e. that the bundle would
    lack where the venv has them, less the ones excluded on purpose. PyInstaller's other
    "missing" names are attributes (numpy._core.float32) or other platforms' modules."""
    skip = tuple(excluded())
    bad = []
    for line in warn.read_text().splitlines():
        match = MISSING.match(line.strip())
        if not match:
            continue
        name = match["name"]
        if name.startswith(NOT_RUNTIME) or any(
            name == mod or name.startswith(mod + ".") for mod in skip
        ):
            continue
        try:
            exists = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            exists = False
        if exists or name.split(".")[0] in ("appliance", "tui"):
            bad.append(line.strip())
    return bad


def ship_models() -> None:
    from appliance.models.bundled import write_manifest
    from appliance.models.locate import prepare_default_chat, prepare_default_embedding

    MODELS_CACHE.mkdir(parents=True, exist_ok=True)
    target = BUNDLE / "models"
    target.mkdir(exist_ok=True)
    for model in (prepare_default_chat(MODELS_CACHE), prepare_default_embedding(MODELS_CACHE)):
        shutil.copy2(model, target / model.name)
    for name, entry in write_manifest(target).items():
        print(f"  model {name}: sha256 {entry['sha256'][:16]}…, {entry['bytes']} bytes")


def audit_isa() -> None:
    # --refresh: what ships is audited afresh; the results are kept for tests/bundle
    cmd = [sys.executable, str(REPO / "packaging" / "isa_audit.py"), str(BUNDLE), "--refresh"]
    for pattern in BUNDLE_RUNTIME_SELECTED:
        cmd += ["--allow", pattern]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print(result.stdout.rstrip())
    if result.stderr.strip():
        print(result.stderr.rstrip())
    if result.returncode != 0:
        sys.exit("make_bundle: the instruction-set audit failed (see above)")


def lock_hash() -> str:
    lock = REPO / "requirements.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else ""


def write_build_info(min_glibc: str, min_glibcxx: str) -> None:
    variants = sorted(
        p.name.removeprefix("libggml-cpu-").removesuffix(".so")
        for p in BUNDLE.rglob("libggml-cpu-*.so")
    )
    info = {
        "version": version(),
        "lock_sha256": lock_hash(),
        "min_glibc": min_glibc,
        "min_glibcxx": min_glibcxx,
        "llama_build": f"portable, AVX baseline, kernels: {' '.join(variants)}",
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (BUNDLE / "BUILD_INFO.json").write_text(json.dumps(info, indent=2) + "\n")
    # read by install.sh before it runs anything of the bundle
    (BUNDLE / "MIN_GLIBC").write_text(min_glibc + "\n")
    (BUNDLE / "MIN_GLIBCXX").write_text(min_glibcxx + "\n")


def ship_files() -> None:
    for name in SHIPPED:
        shutil.copy2(REPO / "packaging" / name, BUNDLE / name)
    shutil.copy2(REPO / "configs" / "appliance.toml", BUNDLE / "appliance.toml")


def make_tarball() -> Path:
    name = f"appliance-{version()}-linux-x86_64"
    tarball = DIST / f"{name}.tar.gz"

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        # root-owned, never group/other-writable: tar run as root restores owners, and a
        # file of the build user's uid would let that local user replace what root runs
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode &= ~0o022
        return info

    with tarfile.open(tarball, "w:gz", compresslevel=6) as tar:
        tar.add(BUNDLE, arcname=name, filter=as_root)
    return tarball


def main() -> int:
    started = time.monotonic()
    shutil.rmtree(BUNDLE, ignore_errors=True)
    run_pyinstaller()
    bad = check_warnings()
    if bad:
        print("\n".join(bad))
        sys.exit("make_bundle: modules of ours are missing from the bundle (above)")
    print("warn-build.txt: no module missing that the build environment has (but the excluded)")
    ship_models()
    ship_files()
    audit_isa()
    floor, worst = glibc_floor(BUNDLE)
    print(f"glibc: the bundle needs GLIBC_{floor} (highest: {worst})")
    cxx, cxx_worst = glibc_floor(BUNDLE, "GLIBCXX")
    print(f"libstdc++ (the system's): the bundle needs GLIBCXX_{cxx} (highest: {cxx_worst})")
    write_build_info(floor, cxx)
    tarball = make_tarball()
    size = tarball.stat().st_size / 1024 / 1024
    print(
        f"{tarball.relative_to(REPO)}: {size:.0f} MiB, built in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
