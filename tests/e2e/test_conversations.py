"""Conversations through the real server: a follow-up finds the right document only with
its history; history is per key (keyed by key and id), listable and deletable; the stream
and the WebSocket carry the conversation too."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import server_env
from tests.e2e.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DOCS = {
    "checksums.md": (
        "# Data checksums\n\nTo enable data checksums on an existing cluster, stop the server "
        "cleanly and run pg_checksums --enable on the data directory. To disable data "
        "checksums again, stop the server and run pg_checksums --disable.\n"
    ),
    "lights.md": (
        "# Office lights\n\nHow do I undo it when the lights were switched off by mistake? "
        "Press the green button by the door to undo it and turn the lights back on.\n"
    ),
    "parking.md": (
        "# Parking\n\nVisitors park in the north lot. Permits are issued by the front desk "
        "and must be shown behind the windscreen.\n"
    ),
}
FIRST = "How do I enable data checksums on an existing cluster?"
FOLLOW_UP = "And how do I undo it?"


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("conversations-data")
    proc = ServerProcess(
        server_env(data, models_dir), tmp_path_factory.mktemp("logs") / "server.log"
    ).start()
    try:
        with proc.client(120) as client:  # hang guard per request
            resp = client.post(
                "/v1/documents",
                files=[("files", (name, text.encode())) for name, text in DOCS.items()],
            )
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["job_id"]
            deadline = time.monotonic() + 300  # hang guard: three short documents (~2 s)
            while client.get(f"/v1/jobs/{job_id}").json()["state"] in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        yield proc
    finally:
        proc.stop()


def ask(client: httpx.Client, query: str, **extra: Any) -> dict[str, Any]:
    resp = client.post("/v1/ask", json={"query": query, "max_tokens": 12, "top_k": 1, **extra})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_a_follow_up_finds_its_document_only_with_the_history(server: ServerProcess) -> None:
    with server.client(180) as client:
        bare = client.post("/v1/search", json={"query": FOLLOW_UP, "top_k": 1}).json()["hits"]
        assert bare[0]["file_name"] == "lights.md"  # alone, the follow-up finds the wrong page
        first = ask(client, FIRST, conversation_id="c-1")
        assert first["conversation_id"] == "c-1"
        assert first["citations"][0]["file_name"] == "checksums.md"
        follow = ask(client, FOLLOW_UP, conversation_id="c-1")
        assert follow["citations"][0]["file_name"] == "checksums.md"
        assert follow["searched"] == f"{FIRST}\n{FOLLOW_UP}"
        alone = ask(client, FOLLOW_UP)  # no conversation: the bare question
        assert alone["citations"][0]["file_name"] == "lights.md"
        assert alone["conversation_id"] is None
        # the history, as kept
        listing = client.get("/v1/conversations").json()["conversations"]
        assert [(c["id"], c["turns"], c["title"]) for c in listing] == [("c-1", 2, FIRST)]
        history = client.get("/v1/conversations/c-1").json()["history"]
        assert [t["question"] for t in history] == [FIRST, FOLLOW_UP]
        assert history[1]["files"] == ["checksums.md"]


def test_the_stream_and_the_websocket_carry_the_conversation(server: ServerProcess) -> None:
    with server.client(180) as client:
        ask(client, FIRST, conversation_id="c-stream")
        with client.stream(
            "POST", "/v1/ask/stream",
            json={"query": FOLLOW_UP, "max_tokens": 8, "top_k": 1, "conversation_id": "c-stream"},
        ) as resp:  # fmt: skip
            assert resp.status_code == 200
            events = [
                json.loads(line[5:]) for line in resp.iter_lines() if line.startswith("data:")
            ]
        done = events[-1]
        assert events[0]["type"] == "evidence"  # the answering sentences first (issue 22)
        assert done["type"] == "done" and done["conversation_id"] == "c-stream"
        assert done["citations"][0]["file_name"] == "checksums.md"
    url = server.url.replace("http", "ws", 1) + "/v1/ask/ws"
    with connect(url, additional_headers=server.headers) as socket:
        socket.send(json.dumps({"query": FOLLOW_UP, "max_tokens": 8, "top_k": 1,
                                "conversation_id": "c-stream"}))  # fmt: skip
        # timeout: a hang guard per event (an 8-token answer takes well under a second)
        while (event := json.loads(socket.recv(timeout=120)))["type"] in ("evidence", "token"):
            pass
    assert event["type"] == "done" and event["citations"][0]["file_name"] == "checksums.md"
    with server.client() as client:
        turns = client.get("/v1/conversations/c-stream").json()["turns"]
        assert turns == 3


def test_history_belongs_to_its_key(server: ServerProcess) -> None:
    with server.client(180) as admin:  # hang guard per request (answers: ~1 s alone)
        made = admin.post("/v1/keys", json={"name": "helpdesk", "role": "query"})
        assert made.status_code == 201, made.text
        other = {"X-API-Key": made.json()["key"]}
        ask(admin, FIRST, conversation_id="c-private")
    # timeout: a hang guard per request, as above
    with httpx.Client(base_url=server.url, headers=other, timeout=180) as client:
        assert client.get("/v1/conversations").json()["conversations"] == []
        unknown = client.get("/v1/conversations/c-nobody")
        theirs = client.get("/v1/conversations/c-private")
        assert (theirs.status_code, theirs.json()) == (404, unknown.json())  # same as unknown
        assert client.delete("/v1/conversations/c-private").status_code == 404
        # the same id under this key is a conversation of its own: the admin's not searched
        mine = ask(client, FOLLOW_UP, conversation_id="c-private")
        assert mine["searched"] == FOLLOW_UP
        assert mine["citations"][0]["file_name"] == "lights.md"
        bad = client.post("/v1/ask", json={"query": "x", "conversation_id": "no spaces allowed"})
        assert bad.status_code == 400 and "conversation_id" in bad.text
    with server.client() as admin:
        history = admin.get("/v1/conversations/c-private").json()["history"]
        assert [t["question"] for t in history] == [FIRST]  # the admin's own, untouched
        assert admin.delete("/v1/conversations/c-private").status_code == 204
        assert admin.get("/v1/conversations/c-private").status_code == 404
        assert admin.get("/readyz").status_code == 200
    with httpx.Client(base_url=server.url, headers=other, timeout=180) as client:  # as above
        assert client.get("/v1/conversations/c-private").json()["turns"] == 1  # still there
