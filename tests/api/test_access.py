"""Access control: every route of the OpenAPI document walked with no key and each role."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.server.app import create_app

pytestmark = pytest.mark.slow

PUBLIC, ANY = "public", "any"
# The specification: the role each operation needs. A route missing here fails the walk.
REQUIRED = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): ANY,
    ("POST", "/v1/documents"): "ingest",
    ("GET", "/v1/documents"): "query",
    ("GET", "/v1/documents/{document_id}"): "query",
    ("DELETE", "/v1/documents/{document_id}"): "admin",
    ("GET", "/v1/documents/{document_id}/chunks"): "query",
    ("POST", "/v1/documents/{document_id}/reindex"): "ingest",
    ("GET", "/v1/jobs"): "ingest",
    ("GET", "/v1/jobs/{job_id}"): "ingest",
    ("POST", "/v1/jobs/{job_id}/cancel"): "ingest",
    ("POST", "/v1/search"): "query",
    ("POST", "/v1/ask"): "query",
    ("POST", "/v1/ask/stream"): "query",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("POST", "/v1/backup"): "admin",
    ("GET", "/v1/models/embedding"): "admin",
    ("POST", "/v1/models/embedding"): "admin",
    ("GET", "/v1/status"): ANY,
    ("GET", "/v1/logs"): "admin",
    ("GET", "/v1/sources"): "ingest",
    ("POST", "/v1/sources"): "admin",
    ("POST", "/v1/sources/{source_id}/scan"): "ingest",
    ("DELETE", "/v1/sources/{source_id}"): "admin",
    ("GET", "/v1/conversations"): "query",
    ("GET", "/v1/conversations/{conversation_id}"): "query",
    ("DELETE", "/v1/conversations/{conversation_id}"): "query",
    ("GET", "/v1/models"): "query",
    ("POST", "/v1/chat/completions"): "query",
    ("POST", "/v1/embeddings"): "query",
}
ROLES = ("admin", "ingest", "query")


def allowed(role: str | None, required: str) -> bool:
    if required == PUBLIC:
        return True
    if role is None:
        return False
    return required == ANY or role == "admin" or role == required


@pytest.fixture(scope="module")
def app_client(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient[Any], Path]]:
    from appliance.config import load_settings
    from tests.conftest import REPO, server_env

    data = tmp_path_factory.mktemp("access-data")
    env = server_env(data, models_dir, APPLIANCE__SECURITY__RATE_LIMIT_PER_MINUTE="150")
    settings = load_settings(REPO / "configs" / "appliance.toml", env)
    with TestClient(create_app(settings), timeout=120) as c:  # hang guard per request
        yield c, data


@pytest.fixture(scope="module")
def keys(app_client: tuple[TestClient[Any], Path]) -> dict[str, str]:
    client, data = app_client
    admin = (data / "secrets" / "admin.key").read_text().strip()
    made = {"admin": admin}
    for role in ("ingest", "query"):
        resp = client.post(
            "/v1/keys", json={"name": f"{role} bot", "role": role}, headers=bearer(admin)
        )
        assert resp.status_code == 201, resp.text
        made[role] = resp.json()["key"]
    return made


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def call(client: TestClient[Any], method: str, path: str, headers: dict[str, str]) -> int:
    """Send a harmless request: placeholders in the path, a body the route refuses."""
    url = path.replace("{document_id}", "no-such-doc").replace("{job_id}", "no-such-job")
    url = url.replace("{key_id}", "nokey000")
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "POST":
        kwargs["json"] = {}
    return client.request(method, url, **kwargs).status_code


def test_every_route_needs_the_right_key(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    client, _ = app_client
    schema = client.get("/openapi.json", headers=bearer(keys["query"])).json()
    assert operations(schema) == set(REQUIRED), "classify every route in REQUIRED"
    wrong: list[str] = []
    for (method, path), required in sorted(REQUIRED.items()):
        for role in (None, *ROLES):
            headers = bearer(keys[role]) if role else {}
            status = call(client, method, path, headers)
            if allowed(role, required):
                ok = status not in (401, 403)
            else:
                ok = status == (401 if role is None else 403)
            if not ok:
                wrong.append(f"{method} {path} as {role or 'no key'}: {status}")
    assert not wrong, "\n".join(wrong)


def test_wrong_or_revoked_key_is_401_and_wrong_role_names_it(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    client, _ = app_client
    resp = client.get("/v1/documents", headers=bearer("rag_deadbeef_not-a-real-secret"))
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/v1/documents", headers={"X-API-Key": keys["query"]}).status_code == 200
    resp = client.delete("/v1/documents/x", headers=bearer(keys["query"]))
    assert resp.status_code == 403 and "`admin` role" in resp.json()["detail"]

    made = client.post(
        "/v1/keys", json={"name": "temp", "role": "query"}, headers=bearer(keys["admin"])
    ).json()
    assert client.get("/v1/documents", headers=bearer(made["key"])).status_code == 200
    revoked = client.delete(f"/v1/keys/{made['id']}", headers=bearer(keys["admin"]))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/v1/documents", headers=bearer(made["key"])).status_code == 401


def test_keys_are_listed_without_secrets_and_the_last_admin_stays(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    client, data = app_client
    listing = client.get("/v1/keys", headers=bearer(keys["admin"]))
    text = listing.text
    assert all(k not in text for k in keys.values())
    assert "hash" not in text
    ids = {k["role"]: k["id"] for k in listing.json()["keys"] if not k["revoked_at"]}
    resp = client.delete(f"/v1/keys/{ids['admin']}", headers=bearer(keys["admin"]))
    assert resp.status_code == 409 and "last active admin key" in resp.json()["detail"]
    bad = client.post("/v1/keys", json={"name": "x", "role": "root"}, headers=bearer(keys["admin"]))
    assert bad.status_code == 400 and "role" in bad.text

    key_file = data / "secrets" / "admin.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data / "secrets").st_mode) == 0o700
    stored = (data / "secrets" / "keys.sqlite3").read_bytes()
    assert all(k.encode() not in stored for k in keys.values())


def test_docs_open_in_a_browser_with_the_key_as_basic_password(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    client, _ = app_client
    resp = client.get("/docs")
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Basic")
    basic = base64.b64encode(f"admin:{keys['query']}".encode()).decode()
    assert client.get("/docs", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert client.get("/openapi.json").status_code == 401


def test_foreign_origin_is_refused_on_state_changes_and_websocket(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    client, _ = app_client
    evil = {**bearer(keys["admin"]), "Origin": "http://evil.example"}
    resp = client.post("/v1/documents", files=[("files", ("a.txt", b"hello"))], headers=evil)
    assert resp.status_code == 403 and "evil.example" in resp.json()["detail"]
    same = {**bearer(keys["query"]), "Origin": "http://testserver.local"}
    assert client.post("/v1/search", json={"query": "x"}, headers=same).status_code == 200
    # a GET needs no Origin check: the browser's same-origin policy keeps the answer
    assert client.get("/v1/documents", headers=evil).status_code == 200

    from litestar.exceptions import WebSocketDisconnect

    for headers, code in (
        ({}, 4401),
        (bearer(keys["ingest"]), 4403),
        ({**bearer(keys["query"]), "Origin": "http://evil.example"}, 4403),
    ):
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/v1/ask/ws", headers=headers) as ws,
        ):
            ws.receive_text()
        assert refused.value.code == code
    with client.websocket_connect("/v1/ask/ws", headers=bearer(keys["query"])) as ws:
        ws.send_text("not json")
        event = json.loads(ws.receive_text())
    assert event["type"] == "error" and event["status"] == 400


def test_rate_limit_per_key_answers_429_with_headers(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    client, _ = app_client
    key = client.post(
        "/v1/keys", json={"name": "busy", "role": "query"}, headers=bearer(keys["admin"])
    ).json()["key"]
    statuses = [client.get("/v1/documents", headers=bearer(key)).status_code for _ in range(151)]
    assert statuses[:150] == [200] * 150 and statuses[150] == 429
    resp = client.get("/v1/documents", headers=bearer(key))
    assert resp.status_code == 429 and "ratelimit-reset" in resp.headers
    # another key has its own budget; health checks are never limited
    assert client.get("/v1/documents", headers=bearer(keys["query"])).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_audit_log_records_admin_actions_and_failures_without_keys(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    client, data = app_client
    client.get("/v1/keys", headers=bearer("rag_00000000_wrong"))
    client.get("/v1/keys", headers=bearer(keys["query"]))  # forbidden
    client.post("/v1/search", json={"query": "x"}, headers={"Origin": "http://evil.example"})
    client.post(
        "/v1/keys", json={"name": "audited", "role": "query"}, headers=bearer(keys["admin"])
    )
    metrics = client.get("/metrics", headers=bearer(keys["query"])).text
    assert 'appliance_auth_failures_total{reason="auth_failed"}' in metrics
    services = client.app.state.services
    services.audit.stop()  # flush the listener thread
    services.audit.start()
    lines = [json.loads(line) for line in (data / "audit.log").read_text().splitlines()]
    events = {e["event"] for e in lines}
    assert {"auth_failed", "forbidden", "origin_refused", "key_created"} <= events
    failed = [e for e in lines if e["event"] == "auth_failed" and e.get("key_id") == "00000000"]
    assert failed and failed[-1]["path"] == "/v1/keys" and failed[-1]["client"]
    text = (data / "audit.log").read_text()
    assert all(k not in text for k in keys.values())


def test_a_key_revoked_while_its_websocket_is_open_is_refused_at_the_next_question(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    from litestar.exceptions import WebSocketDisconnect

    client, _ = app_client
    made = client.post(
        "/v1/keys", json={"name": "socket", "role": "query"}, headers=bearer(keys["admin"])
    ).json()
    with client.websocket_connect("/v1/ask/ws", headers=bearer(made["key"])) as ws:
        ws.send_text("not json")
        assert json.loads(ws.receive_text())["status"] == 400
        client.delete(f"/v1/keys/{made['id']}", headers=bearer(keys["admin"]))
        ws.send_text("not json")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 4401


def test_openai_routes_refuse_in_openai_error_shape_with_the_same_limits(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str]
) -> None:
    client, _ = app_client
    resp = client.post("/v1/embeddings", json={"model": "m", "input": "x"})
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.json()["error"]["code"] == "invalid_api_key"
    resp = client.get("/v1/models", headers=bearer(keys["ingest"]))
    assert resp.status_code == 403 and "`query` role" in resp.json()["error"]["message"]
    resp = client.post("/v1/chat/completions", json={"model": "m"}, headers=bearer(keys["query"]))
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "messages"
    key = client.post(
        "/v1/keys", json={"name": "openai busy", "role": "query"}, headers=bearer(keys["admin"])
    ).json()["key"]
    statuses = [client.get("/v1/models", headers=bearer(key)).status_code for _ in range(151)]
    assert statuses[:150] == [200] * 150 and statuses[150] == 429
    resp = client.get("/v1/models", headers=bearer(key))
    assert resp.status_code == 429 and "ratelimit-reset" in resp.headers
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
