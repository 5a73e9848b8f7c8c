"""What one API key can learn of or take from another, and from callers without a key:
conversations are keyed by (key, id); a socket's questions spend the key's rate limit;
/readyz gives codes, never an exception's text (the app in process, real models)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.security.keys import key_id_of
from appliance.server.app import create_app

pytestmark = pytest.mark.slow

PER_MINUTE = 40  # security.rate_limit_per_minute of this app
FIRST = "How do I enable data checksums on an existing cluster?"
FOLLOW_UP = "And how do I undo it?"


@pytest.fixture(scope="module")
def app(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    from appliance.config import load_settings
    from tests.conftest import REPO, server_env

    data = tmp_path_factory.mktemp("boundaries-data")
    env = server_env(data, models_dir, APPLIANCE__SECURITY__RATE_LIMIT_PER_MINUTE=str(PER_MINUTE))
    settings = load_settings(REPO / "configs" / "appliance.toml", env)
    with TestClient(create_app(settings), timeout=120) as client:  # hang guard per request
        client.headers["Authorization"] = f"Bearer {admin_key(data)}"
        yield client


def admin_key(data: Path) -> str:
    return (data / "secrets" / "admin.key").read_text().strip()


def new_key(app: TestClient[Any], name: str) -> dict[str, str]:
    made = app.post("/v1/keys", json={"name": name, "role": "query"})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def ask(
    app: TestClient[Any], query: str, headers: dict[str, str] | None = None, **extra: Any
) -> Any:
    body = {"query": query, "max_tokens": 4, "top_k": 1, **extra}
    return app.post("/v1/ask", json=body, **({"headers": headers} if headers else {}))


def test_another_keys_conversation_id_is_a_new_conversation(app: TestClient[Any]) -> None:
    admin_id = key_id_of(app.headers["Authorization"].split()[1])
    mine = ask(app, FIRST, conversation_id="c-shared")
    assert mine.status_code == 200, mine.text
    other = new_key(app, "helpdesk")
    other_id = key_id_of(other["Authorization"].split()[1])
    # before it asks, another key's id reads exactly like an id nobody uses
    unknown = app.get("/v1/conversations/c-nobody", headers=other)
    assert unknown.status_code == 404
    for method in ("GET", "DELETE"):
        theirs = app.request(method, "/v1/conversations/c-shared", headers=other)
        assert (theirs.status_code, theirs.json()) == (404, unknown.json())
    named = app.get(f"/v1/conversations/c-shared?key_id={admin_id}", headers=other)
    assert (named.status_code, named.json()) == (404, unknown.json())  # only admins name keys
    # asking with it starts the other key's own conversation: nothing of the first is used
    follow = ask(app, FOLLOW_UP, other, conversation_id="c-shared")
    assert follow.status_code == 200, follow.text
    assert follow.json()["conversation_id"] == "c-shared"
    assert follow.json()["searched"] == FOLLOW_UP
    history = app.get("/v1/conversations/c-shared", headers=other).json()
    assert history["key_id"] == other_id
    assert [t["question"] for t in history["history"]] == [FOLLOW_UP]
    listed = app.get("/v1/conversations", headers=other).json()["conversations"]
    assert [(c["id"], c["key_id"]) for c in listed] == [("c-shared", other_id)]
    # the first key's is untouched; an admin sees both and names the other's by key
    own = app.get("/v1/conversations/c-shared").json()
    assert own["key_id"] == admin_id and [t["question"] for t in own["history"]] == [FIRST]
    everyone = app.get("/v1/conversations").json()["conversations"]
    assert {(c["id"], c["key_id"]) for c in everyone} == {
        ("c-shared", admin_id), ("c-shared", other_id),
    }  # fmt: skip
    assert app.get(f"/v1/conversations/c-shared?key_id={other_id}").json()["turns"] == 1
    assert app.delete(f"/v1/conversations/c-shared?key_id={other_id}").status_code == 204
    assert app.get("/v1/conversations/c-shared", headers=other).status_code == 404
    assert app.get("/v1/conversations/c-shared").json()["turns"] == 1


def test_questions_on_a_socket_spend_the_keys_rate_limit(app: TestClient[Any]) -> None:
    busy = new_key(app, "socket")
    for _ in range(PER_MINUTE - 5):  # HTTP and socket share one budget
        assert app.get("/v1/conversations", headers=busy).status_code == 200
    with app.websocket_connect("/v1/ask/ws", headers=busy) as ws:
        for _ in range(5):
            ws.send_text("not json")  # answered (400), and counted
            assert json.loads(ws.receive_text())["status"] == 400
        for _ in range(2):  # over the limit: refused, the socket stays open
            ws.send_text(json.dumps({"query": "Where are backups kept?", "max_tokens": 4}))
            refused = json.loads(ws.receive_text())
            assert (refused["type"], refused.get("status"), refused.get("code")) == (
                "error", 429, "rate_limit_exceeded",
            )  # fmt: skip
            assert "rate_limit_per_minute" in refused["message"]
    assert app.get("/v1/conversations", headers=busy).status_code == 429
    # another key's budget is its own
    with app.websocket_connect("/v1/ask/ws", headers=new_key(app, "calm")) as ws:
        ws.send_text("not json")
        assert json.loads(ws.receive_text())["status"] == 400


def test_readiness_without_a_key_gives_codes_not_exception_text(
    app: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = app.app.state.services

    async def broken_disk() -> None:  # stands in for a journal whose disk failed
        raise OSError("disk I/O error reading /srv/secret-share/journal.sqlite")

    monkeypatch.setattr(services.journal, "ping", broken_disk)
    ready = app.get("/readyz", headers={"Authorization": ""})
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"embedding_model": "ok", "chat_model": "ok", "vector_store": "ok",
                   "journal": "error"},
    }  # fmt: skip
    assert "secret-share" not in ready.text


def test_a_failed_start_is_a_code_on_readyz_and_its_reason_logged(
    settings_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import appliance.server.app as app_module

    async def broken_build(settings: Any, plan: Any) -> Any:
        raise RuntimeError("cannot open /srv/secret-share/models: permission denied")

    monkeypatch.setattr(app_module, "build_services", broken_build)
    starting = create_app(settings_for(), load_in_background=True)
    failures: list[str] = []
    starting.state.on_start_failure = failures.append
    with TestClient(starting, timeout=120) as client:  # hang guard per request
        for _ in range(2400):  # the start fails in the background (120 s: a hang guard)
            if failures:
                break
            time.sleep(0.05)
        ready = client.get("/readyz")
    assert failures, "the start did not fail"
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"models": "failed"}}
    assert "secret-share" in failures[0]  # logged, and the server exits 1 with it
