"""A generation server failing mid-request reaches every client as the same 502: the
answer routes (`/v1/ask`, chat completions with RAG) and plain chat (`"rag": false`)
run one generation loop.

The external server is a small HTTP server on loopback that lists a model and answers
every chat completion with HTTP 502, as a proxy in front of a dead GPU box does; the
appliance runs in process (real embedding model, real store) with
`generation.backend = "openai"` pointed at it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.server.app import create_app

pytestmark = pytest.mark.slow

MODEL = "upstream-model"


class BadGateway(BaseHTTPRequestHandler):
    """Lists one model; every chat completion: 502 with an OpenAI-shaped error body."""

    def do_GET(self) -> None:
        self._answer(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(502, {"error": {"message": "upstream bad gateway", "type": "server_error"}})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BadGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def client(
    upstream: str, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Any]]:
    from appliance.config import load_settings
    from tests.conftest import REPO, server_env

    data = tmp_path_factory.mktemp("data")
    env = server_env(
        data, models_dir,
        APPLIANCE__GENERATION__BACKEND="openai",
        APPLIANCE__GENERATION__URL=upstream,
        APPLIANCE__GENERATION__MODEL=MODEL,
        APPLIANCE__GENERATION__N_CTX="2048",
    )  # fmt: skip
    settings = load_settings(REPO / "configs" / "appliance.toml", env)
    with TestClient(create_app(settings), timeout=120) as c:  # hang guard per request
        key = (data / "secrets" / "admin.key").read_text().strip()
        c.headers["Authorization"] = f"Bearer {key}"
        yield c


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}


def test_ask_answers_502_naming_the_server(client: TestClient[Any], upstream: str) -> None:
    resp = client.post("/v1/ask", json={"query": "When are backups run?", "max_tokens": 8})
    assert resp.status_code == 502, resp.text
    assert resp.json()["code"] == "generation_server_error"
    assert upstream in resp.json()["detail"]


@pytest.mark.parametrize("rag", [True, False])
def test_chat_completion_answers_502_with_or_without_rag(
    client: TestClient[Any], upstream: str, rag: bool
) -> None:
    resp = client.post("/v1/chat/completions", json={**CHAT, "rag": rag})
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert error["type"] == "server_error"
    assert error["code"] == "generation_server_error"
    assert upstream in error["message"]


@pytest.mark.parametrize("rag", [True, False])
def test_streamed_chat_completion_ends_with_the_502(
    client: TestClient[Any], upstream: str, rag: bool
) -> None:
    resp = client.post("/v1/chat/completions", json={**CHAT, "rag": rag, "stream": True})
    assert resp.status_code == 200, resp.text
    frames = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    error = json.loads(frames[-1])["error"]
    assert error["code"] == "generation_server_error"
    assert upstream in error["message"]
