"""OCR with the network unreachable: the server, its parser sandbox and RapidOCR run in a
network namespace that has only loopback, so a model download would fail the ingestion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_scanned_pdf_is_read_by_ocr_offline(models_dir: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip to make a network namespace")  # CI runs as root
    run = subprocess.run(
        ["unshare", "--net", "sh", "-c",
         'ip link set lo up && exec "$0" -m tests.e2e.offline_ocr "$1" "$2"',
         sys.executable, str(tmp_path), str(models_dir)],
        # hang guard: a server start, OCR of two pages, a search (~30 s alone)
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["network_blocked"] is True
    file = report["file"]
    assert file["state"] == "done", file
    assert file["note"] == "pages read by OCR: 1, 2"
    top = report["hits"][0]
    assert top["file_name"] == "contract-scan.pdf" and top["page"] == 2, report["hits"]
    assert "renews automatically in March" in top["text"]
