"""Import rules (pyproject [tool.importlinter]): core without textual, TUI over HTTP only."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_core_imports_without_textual() -> None:
    code = (
        "import sys, appliance.server.app, appliance.cli;"
        "assert 'textual' not in sys.modules, 'textual imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_tui_contract_names_every_package() -> None:
    """A new top-level package is forbidden to the TUI unless it is one of the shared few."""
    import pkgutil
    import tomllib

    import appliance

    shared = {"appliance.client", "appliance.wire", "appliance.config", "appliance.domain"}
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contract = next(
        c for c in config["tool"]["importlinter"]["contracts"] if c["source_modules"] == ["tui"]
    )
    forbidden = set(contract["forbidden_modules"])
    modules = {f"appliance.{m.name}" for m in pkgutil.iter_modules(appliance.__path__)}
    modules -= {"appliance.__main__"}
    missing = sorted(modules - shared - forbidden)
    assert not missing, f"add to the TUI contract's forbidden_modules: {missing}"
