"""install.sh run for real into temporary roots, without a built bundle: what it does
with the config file (the bundle's own test, tests/bundle, runs it on the real tarball).

The unpacked tarball is assembled from packaging/ and configs/; its `appliance`
executable is a stand-in shell script (the PyInstaller build needs `make bundle`) that
passes `doctor` and `config check`. install.sh wants root: the test skips otherwise.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAND_IN = """#!/bin/sh
# stands in for the bundle's executable: install.sh runs `doctor` and `config check`
case "$*" in
  *doctor*) echo "verdict: the appliance can run here" ;;
esac
exit 0
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="install.sh runs as root")


def service_user() -> str:
    """A system user with a group of its own name, other than root's, if there is one."""
    for name in ("daemon", "bin", "nobody"):
        try:
            grp.getgrnam(name)
            subprocess.run(["id", name], check=True, capture_output=True)
        except (KeyError, subprocess.CalledProcessError):
            continue
        return name
    return "root"


def unpacked(base: Path) -> Path:
    folder = base / "appliance-test-linux-x86_64"
    folder.mkdir()
    for name in ("install.sh", "layout.sh", "appliance.service"):
        shutil.copy2(REPO / "packaging" / name, folder / name)
    shutil.copy2(REPO / "configs" / "appliance.toml", folder / "appliance.toml")
    (folder / "MIN_GLIBC").write_text("2.17\n")
    (folder / "MIN_GLIBCXX").write_text("3.4.9\n")
    exe = folder / "appliance"
    exe.write_text(STAND_IN)
    exe.chmod(0o755)
    return folder


def install(folder: Path, root: Path, user: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PREFIX": str(root / "opt" / "appliance"), "ETC_DIR": str(root / "etc" / "appliance"),
        "DATA_DIR": str(root / "var" / "lib" / "appliance"),
        "UNIT_DIR": str(root / "units"), "BIN_LINK": str(root / "bin" / "appliance"),
        "SERVICE_USER": user, "NO_SYSTEMCTL": "1",
    }  # fmt: skip
    for directory in (root / "units", root / "bin"):
        directory.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        # timeout: a hang guard (install.sh copies a small tree and writes the config: ~1 s)
        ["sh", str(folder / "install.sh")], env=env, cwd=folder.parent, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


def test_the_config_is_readable_by_root_and_the_service_group_only(tmp_path: Path) -> None:
    folder, root, user = unpacked(tmp_path), tmp_path / "root", service_user()
    config = root / "etc" / "appliance" / "appliance.toml"
    first = install(folder, root, user)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "wrote" in first.stdout
    info = config.stat()
    assert (oct(info.st_mode & 0o777), info.st_uid, info.st_gid) == (
        "0o640", 0, grp.getgrnam(user).gr_gid,
    )  # fmt: skip
    # an upgrade keeps the config's text and closes one an older install left open
    config.write_text(config.read_text() + "\n# edited by the admin\n")
    config.chmod(0o644)
    os.chown(config, 0, 0)
    again = install(folder, root, user)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kept" in again.stdout and config.read_text().endswith("# edited by the admin\n")
    info = config.stat()
    assert (oct(info.st_mode & 0o777), info.st_gid) == ("0o640", grp.getgrnam(user).gr_gid)
