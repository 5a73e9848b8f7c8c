"""`appliance doctor` from a source checkout: real machine facts, real model headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.cli.doctor import Report, check_sandbox, run_doctor
from appliance.config.paths import admin_key_file
from appliance.ingest.landlock import landlock_abi

pytestmark = pytest.mark.slow


def test_doctor_reports_and_passes_with_the_default_models(settings_for: Any) -> None:
    report, code = run_doctor(settings_for())
    text = "\n".join(report.lines)
    assert code == 0, text
    for part in ("CPU", "flags", "cores", "RAM", "disk", "port", "glibc", "sandbox", "total ~",
                 "larger chat models", "verdict: the appliance can run here"):  # fmt: skip
        assert part in text, part
    # settings_for forces answer_mode "generate"; the shipped "auto" with the 135M model:
    assert "answers:       generate (answer_mode = 'generate')" in text, text
    shipped, _ = run_doctor(settings_for(APPLIANCE__GENERATION__ANSWER_MODE="auto"))
    line = next(x for x in shipped.lines if x.startswith("answers:"))
    assert "extract (answer_mode 'auto': the chat model has 135M weights" in line, line


def test_doctor_names_what_blocks_a_start(settings_for: Any, tmp_path: Path) -> None:
    settings = settings_for(APPLIANCE__MODELS__CHAT_MODEL=str(tmp_path / "missing.gguf"))
    report, code = run_doctor(settings)
    assert code == 1
    assert any("missing.gguf" in b for b in report.blockers), report.blockers
    assert "verdict: the appliance CANNOT run here:" in report.lines


def test_doctor_asks_a_real_parser_child_what_it_can_open(settings_for: Any) -> None:
    settings = settings_for()
    key = admin_key_file(settings)
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text("the admin key\n")
    report = Report()
    check_sandbox(report, settings)
    [line] = [line for line in report.lines if line.startswith("sandbox")]
    assert "NoNewPrivs" in line and "admin.key unreadable" in line, line
    if landlock_abi():
        assert f"Landlock ABI {landlock_abi()}" in line and not report.advice, report.advice
