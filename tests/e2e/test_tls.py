"""TLS from config: uvicorn serves HTTPS with the configured certificate and key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import server_env
from tests.e2e.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_https_with_the_configured_certificate(models_dir: Path, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    env = server_env(
        tmp_path / "data", models_dir,
        APPLIANCE__SERVER__TLS_CERT=str(cert), APPLIANCE__SERVER__TLS_KEY=str(key),
    )  # fmt: skip
    server = ServerProcess(env, tmp_path / "server.log", ca=cert).start()
    try:
        with server.client() as client:
            assert client.get("/v1/documents").status_code == 200
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served
            # hang guard: a TLS server answers plain HTTP with an error or a close at once
            httpx.get(server.url.replace("https://", "http://") + "/healthz", timeout=30)
    finally:
        server.stop()
