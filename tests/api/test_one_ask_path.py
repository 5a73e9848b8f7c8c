"""One ask path: JSON (`/v1/ask`), Server-Sent Events (`/v1/ask/stream`), WebSocket
(`/v1/ask/ws`) and chat completions all call `QueryService.ask`, and only translate its
events. The same question, asked greedily one after another through each, gets the same
answer and citations, and the three that take a `conversation_id` record the same turn.
(The app in process with the real models and store, as tests/api/test_api.py.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.server.app import create_app
from tests.docs_factory import make_md

pytestmark = pytest.mark.slow

QUESTION = "How long are nightly backups kept?"
ASK = {"query": QUESTION, "max_tokens": 24, "temperature": 0}


@contextmanager
def serving_backups(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory, **env: str | None
) -> Iterator[TestClient[Any]]:
    """The app in process with one small document ingested, as the admin; `env`: settings
    changed from `server_env`'s (None: the shipped value)."""
    from appliance.config import load_settings
    from tests.conftest import REPO, server_env

    data = tmp_path_factory.mktemp("data")
    variables = server_env(data, models_dir)
    for name, value in env.items():
        if value is None:
            variables.pop(name, None)
        else:
            variables[name] = value
    settings = load_settings(REPO / "configs" / "appliance.toml", variables)
    with TestClient(create_app(settings), timeout=120) as c:  # hang guard per request
        key = (data / "secrets" / "admin.key").read_text().strip()
        c.headers["Authorization"] = f"Bearer {key}"
        doc = make_md(tmp_path_factory.mktemp("docs") / "backups.md")
        resp = c.post("/v1/documents", files=[("files", (doc.name, doc.read_bytes()))])
        assert resp.status_code == 202, resp.text
        deadline = time.monotonic() + 300  # hang guard: one small document (~1 s alone)
        while (job := c.get(f"/v1/jobs/{resp.json()['job_id']}").json())["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["state"] == "done", job
        yield c


@pytest.fixture(scope="module")
def client(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    with serving_backups(models_dir, tmp_path_factory) as c:
        yield c


def by_json(client: TestClient[Any]) -> dict[str, Any]:
    resp = client.post("/v1/ask", json={**ASK, "conversation_id": "json"})
    assert resp.status_code == 200, resp.text
    done: dict[str, Any] = resp.json()
    return done


def by_sse(client: TestClient[Any]) -> dict[str, Any]:
    resp = client.post("/v1/ask/stream", json={**ASK, "conversation_id": "sse"})
    assert resp.status_code == 200, resp.text
    done: dict[str, Any] = json.loads(resp.text.strip().splitlines()[-1][5:])
    assert done["type"] == "done"
    return done


def by_websocket(client: TestClient[Any]) -> dict[str, Any]:
    with client.websocket_connect("/v1/ask/ws") as ws:
        ws.send_text(json.dumps({**ASK, "conversation_id": "ws"}))
        while (event := json.loads(ws.receive_text()))["type"] in ("evidence", "token"):
            pass
    assert event["type"] == "done", event
    done: dict[str, Any] = event
    return done


def by_chat_completion(client: TestClient[Any]) -> dict[str, Any]:
    model = client.get("/v1/models").json()["data"][0]["id"]
    body = {
        "model": model, "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": ASK["max_tokens"], "temperature": 0,
    }  # fmt: skip
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    completion = resp.json()
    return {"answer": completion["choices"][0]["message"]["content"], **completion["rag"]}


def test_every_transport_gets_the_same_answer_and_conversation_turn(
    client: TestClient[Any],
) -> None:
    answers = {
        "json": by_json(client),
        "sse": by_sse(client),
        "ws": by_websocket(client),
        "chat": by_chat_completion(client),
    }
    first = answers["json"]
    assert first["answer"] and first["citations"]
    for transport, done in answers.items():
        assert done["answer"] == first["answer"], transport
        assert done["citations"] == first["citations"], transport
        assert done["strategy"] == first["strategy"], transport
    for conversation in ("json", "sse", "ws"):
        assert answers[conversation]["conversation_id"] == conversation
        assert answers[conversation]["searched"] == QUESTION
        read = client.get(f"/v1/conversations/{conversation}").json()
        [turn] = read["history"]
        assert (turn["question"], turn["searched"]) == (QUESTION, QUESTION)
        assert turn["answer"] == first["answer"]
        assert turn["files"] == ["backups.md"]
