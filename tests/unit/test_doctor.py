"""`appliance doctor` from a source checkout: real machine facts, real model headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.doctor import run_doctor

pytestmark = pytest.mark.slow


def test_doctor_reports_and_passes_with_the_default_models(settings_for: Any) -> None:
    report, code = run_doctor(settings_for())
    text = "\n".join(report.lines)
    assert code == 0, text
    for part in ("CPU", "flags", "cores", "RAM", "disk", "port", "glibc", "total ~",
                 "larger chat models", "verdict: the appliance can run here"):  # fmt: skip
        assert part in text, part


def test_doctor_names_what_blocks_a_start(settings_for: Any, tmp_path: Path) -> None:
    settings = settings_for(APPLIANCE__MODELS__CHAT_MODEL=str(tmp_path / "missing.gguf"))
    report, code = run_doctor(settings)
    assert code == 1
    assert any("missing.gguf" in b for b in report.blockers), report.blockers
    assert "verdict: the appliance CANNOT run here:" in report.lines
