"""Smoke test: the real `appliance tui` in tmux against a real server process, keys sent
with `send-keys`, the screen read with `capture-pane`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, server_env
from tests.docs_factory import make_md
from tests.e2e.server import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
# A hang guard per screen, not a timing assert: each step (a screen, an ingest, an answer)
# takes seconds alone; 180 s leaves room for a CPU hog beside the suite.
WAIT_S = 180.0


@pytest.fixture
def server(models_dir: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(server_env(tmp_path / "data", models_dir), tmp_path / "server.log")
    yield proc.start()
    proc.stop()


class Tmux:
    def __init__(self, session: str) -> None:
        self.session = session

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", *args], capture_output=True, text=True, check=True)
        return done.stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + WAIT_S
        while True:
            shown = self.screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never shown; the screen:\n{shown}")
            time.sleep(0.2)


def test_the_console_runs_in_tmux_against_a_real_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:  # `make test` installs it (system-deps)
        pytest.fail("tmux is not installed: run `make system-deps`")
    docs = tmp_path / "docs"
    docs.mkdir()
    make_md(docs / "backups.md")
    appliance = Path(sys.executable).with_name("appliance")
    command = (
        f"cd {docs} && {appliance} --config {REPO / 'configs' / 'appliance.toml'} tui "
        f"--url {server.url} --key {server.key}"
    )
    tmux = Tmux(f"console-{tmp_path.name}")
    tmux.run("new-session", "-d", "-s", tmux.session, "-x", "80", "-y", "24", command)
    try:
        shown = tmux.wait_for("Appliance: READY")
        assert "[1 Dashboard]" in shown and "requests/s" in shown
        tmux.keys("2")
        tmux.wait_for("[2 Ingest]")
        tmux.keys(str(docs), "Enter")
        tmux.wait_for("To upload (u)")
        tmux.keys("u")
        tmux.wait_for("backups.md: done")
        tmux.keys("3")
        shown = tmux.wait_for("1 documents")
        assert "backups.md" in shown
        tmux.keys("4")
        tmux.wait_for("[4 Ask]")
        tmux.keys("When do nightly backups run?", "Enter")
        shown = tmux.wait_for("Evidence")
        assert "first token" in shown and "backups.md" in shown
        tmux.keys("Escape")  # alone: Escape and a key at once read as Alt+key
        time.sleep(0.5)  # lets the console read Escape alone before the next key
        tmux.keys("7")
        tmux.wait_for("following")
        tmux.keys("q")
        deadline = time.monotonic() + WAIT_S
        while subprocess.run(["tmux", "has-session", "-t", tmux.session]).returncode == 0:
            assert time.monotonic() < deadline, "the console did not quit on q"
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", tmux.session], capture_output=True)
