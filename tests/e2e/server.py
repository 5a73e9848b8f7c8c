"""Run the real server with uvicorn in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    def __init__(
        self, env: dict[str, str], log_path: Path, ca: Path | None = None,
        config: Path | None = None,
    ) -> None:  # fmt: skip
        """`ca`: the server speaks HTTPS with a certificate signed by this file; `config`:
        its config file (default: configs/appliance.toml)."""
        self.config = config
        self.port = free_port()
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.verify: str | bool = str(ca) if ca else True
        self.env = {
            **os.environ,
            **env,
            "APPLIANCE__SERVER__HOST": "127.0.0.1",
            "APPLIANCE__SERVER__PORT": str(self.port),
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir = Path(self.env["APPLIANCE__STORAGE__DATA_DIR"])

    @property
    def key(self) -> str:
        """The bootstrap admin key the server wrote on its first start."""
        return (self.data_dir / "secrets" / "admin.key").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, timeout: float = 120) -> httpx.Client:
        """An HTTP client with the admin key. `timeout`: a hang guard per request (a
        request the server works on, such as an answer, takes seconds; 120 s leaves room
        for a CPU hog beside the suite), never a speed check."""
        return httpx.Client(
            base_url=self.url, timeout=timeout, headers=self.headers, verify=self.verify
        )

    def start(self, timeout: float = 300) -> ServerProcess:
        """`timeout`: a hang guard; a start loads both models in ~2 s alone."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance",
             *(["--config", str(self.config)] if self.config else []), "serve"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                # a probe: one that stalls is retried until the deadline above
                ready = httpx.get(f"{self.url}/readyz", timeout=5, verify=self.verify)
                if ready.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)  # a graceful stop drains answers: room for a busy CPU
            except subprocess.TimeoutExpired:
                self.proc.kill()  # hung: the test that checks a clean stop says so itself
                self.proc.wait(10)  # SIGKILL cannot be ignored: only a hang guard
        return self.proc.returncode
