"""The bundle build's check of PyInstaller's warn file: what counts as missing."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
sys.path.insert(0, str(PACKAGING))

from make_bundle import check_warnings  # noqa: E402

WARN = """
This file lists modules PyInstaller was not able to find.
missing module named json.decoder - imported by somelib (top-level)
missing module named numpy._core.float32 - imported by numpy._core (top-level)
missing module named 'multiprocessing.get_context' - imported by multiprocessing (top-level)
missing module named winreg - imported by platform (delayed, optional)
missing module named pytest - imported by anyio (delayed)
missing module named matplotlib.pyplot - imported by somelib (optional)
missing module named appliance.not_there - imported by appliance.cli (delayed)
missing module named distutils._log - imported by setuptools (top-level)
"""


def test_only_modules_the_build_environment_has_count(tmp_path: Path) -> None:
    warn = tmp_path / "warn-build.txt"
    warn.write_text(WARN)
    bad = check_warnings(warn)
    names = [line.split()[3] for line in bad]
    # json.decoder exists here, so the bundle would lack it; ours always counts
    assert names == ["json.decoder", "appliance.not_there"], bad
