"""`uninstall.sh --purge` removes the data dir and what `appliance restore` left beside
it (the previous data, a restore interrupted halfway), and nothing else there."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="uninstall.sh runs as root only")
def test_purge_removes_the_copies_restore_kept(tmp_path: Path) -> None:
    var = tmp_path / "var"
    data = var / "appliance"
    for folder in [
        data / "secrets",
        var / "appliance.before-restore-20260101-120000-x1y2",
        var / ".appliance.restoring-a1b2",
        var / "appliance-other",  # another program's: stays
        tmp_path / "etc",
        tmp_path / "opt",
    ]:
        folder.mkdir(parents=True)
        (folder / "file").write_text("x")
    env = {
        **os.environ,
        "PREFIX": str(tmp_path / "opt"),
        "ETC_DIR": str(tmp_path / "etc"),
        "DATA_DIR": str(data),
        "UNIT_DIR": str(tmp_path / "units"),
        "BIN_LINK": str(tmp_path / "bin" / "appliance"),
        "SERVICE_USER": "appliance-test-no-such-user",
        "NO_SYSTEMCTL": "1",
    }
    subprocess.run(
        ["sh", str(REPO / "packaging" / "uninstall.sh"), "--purge"], env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    assert sorted(p.name for p in var.iterdir()) == ["appliance-other"]
    assert not (tmp_path / "etc").exists() and not (tmp_path / "opt").exists()
