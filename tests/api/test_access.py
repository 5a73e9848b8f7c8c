"""Access control: every route of the OpenAPI document walked with no key and each role."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
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
    ("GET", "/v1/collections"): "query",
    ("POST", "/v1/collections"): "admin",
    ("PATCH", "/v1/collections/{name}"): "admin",
    ("DELETE", "/v1/collections/{name}"): "admin",
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
    url = url.replace("{key_id}", "nokey000").replace("{name}", "no-such-collection")
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PATCH"):
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


# ---- collections: who reads what ---------------------------------------------------
HR_FACT = "Staff file leave requests on form PINEAPPLE-7731 in the human resources portal."
DESK_FACT = "The helpdesk resets forgotten passwords at the MANGO-4420 kiosk on floor two."
QUESTION = {"query": "Which form do staff file leave requests on?", "strategy": "extract"}
# Every operation, and how it is kept to the key's collections: a probe of what an HR
# document shows through it, or why it shows none. A new route fails the test until it
# is listed here.
NO_CONTENT = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/v1/status"),  # counts the key's documents only (test below)
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("DELETE", "/v1/keys/{key_id}"),
    ("POST", "/v1/backup"),
    ("GET", "/v1/models/embedding"),
    ("POST", "/v1/models/embedding"),
    ("GET", "/v1/logs"),
    ("POST", "/v1/sources"),
    ("DELETE", "/v1/sources/{source_id}"),
    ("DELETE", "/v1/documents/{document_id}"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/collections"),
    ("PATCH", "/v1/collections/{name}"),
    ("DELETE", "/v1/collections/{name}"),  # admin only, or no document content
    ("POST", "/v1/documents"),  # uploads: the collection is checked (test below)
    ("GET", "/v1/conversations"),
    ("GET", "/v1/conversations/{conversation_id}"),
    ("DELETE", "/v1/conversations/{conversation_id}"),  # each key's own (follow-up: e2e)
}
PROBES: dict[tuple[str, str], tuple[str, str, dict[str, Any] | None]] = {
    ("GET", "/v1/documents"): ("query", "GET /v1/documents", None),
    ("GET", "/v1/documents/{document_id}"): ("query", "GET /v1/documents/{doc}", None),
    ("GET", "/v1/documents/{document_id}/chunks"): (
        "query", "GET /v1/documents/{doc}/chunks", None),
    ("POST", "/v1/documents/{document_id}/reindex"): (
        "ingest", "POST /v1/documents/{doc}/reindex", {}),
    ("GET", "/v1/jobs"): ("ingest", "GET /v1/jobs", None),
    ("GET", "/v1/jobs/{job_id}"): ("ingest", "GET /v1/jobs/{job}", None),
    ("POST", "/v1/jobs/{job_id}/cancel"): ("ingest", "POST /v1/jobs/{job}/cancel", {}),
    ("POST", "/v1/search"): ("query", "POST /v1/search", {"query": QUESTION["query"], "top_k": 50}),
    ("POST", "/v1/ask"): ("query", "POST /v1/ask", QUESTION),
    ("POST", "/v1/ask/stream"): ("query", "POST /v1/ask/stream", QUESTION),
    ("POST", "/v1/chat/completions"): ("query", "POST /v1/chat/completions", {
        "model": "appliance", "strategy": "extract",
        "messages": [{"role": "user", "content": QUESTION["query"]}]}),
    ("GET", "/v1/models"): ("query", "GET /v1/models", None),
    ("GET", "/v1/collections"): ("query", "GET /v1/collections", None),
    ("GET", "/v1/sources"): ("ingest", "GET /v1/sources", None),
    ("POST", "/v1/sources/{source_id}/scan"): ("ingest", "POST /v1/sources/hr-share/scan", {}),
}  # fmt: skip
SCOPES = {"hr": ["hr"], "desk": ["desk"], "all": ["*"]}
ACTIONS = {"reindex", "cancel", "scan"}  # these show nothing: success is what they let through


@pytest.fixture(scope="module")
def teams(
    app_client: tuple[TestClient[Any], Path], keys: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:  # fmt: skip
    """Collections `hr` and `desk` with one document each, an HR source, and keys of
    each role scoped to hr, to desk and to `*` (named `<role>-<scope>`)."""
    client, _ = app_client
    admin = bearer(keys["admin"])
    made: dict[str, str] = {}
    for name, fact in (("hr", HR_FACT), ("desk", DESK_FACT)):
        assert client.post("/v1/collections", json={"name": name}, headers=admin).status_code == 201
        resp = client.post(
            "/v1/documents", files=[("files", (f"{name}.txt", fact.encode()))],
            data={"collection": name}, headers=admin,
        )  # fmt: skip
        assert resp.status_code == 202, resp.text
        made[f"job-{name}"] = job = resp.json()["job_id"]
        for _ in range(600):
            state = client.get(f"/v1/jobs/{job}", headers=admin).json()
            if state["state"] == "done":
                break
            time.sleep(0.1)
        made[f"doc-{name}"] = state["files"][0]["document_id"]
    share = tmp_path_factory.mktemp("hr-share")
    spec = {"id": "hr-share", "path": str(share), "collection": "hr", "role": "ingest"}
    assert client.post("/v1/sources", json=spec, headers=admin).status_code == 201
    for role in ("query", "ingest"):
        for scope, collections in SCOPES.items():
            body = {"name": f"{role} {scope}", "role": role, "collections": collections}
            resp = client.post("/v1/keys", json=body, headers=admin)
            assert resp.status_code == 201, resp.text
            assert resp.json()["collections"] == collections
            made[f"{role}-{scope}"] = resp.json()["key"]
    made["admin"] = keys["admin"]
    return made


def test_every_route_returning_document_content_is_kept_to_the_keys_collections(
    app_client: tuple[TestClient[Any], Path], teams: dict[str, str]
) -> None:
    """Each key sees the HR document (its id, its job, its text, its source, its
    collection) through a route exactly when it reads `hr`: keys scoped to hr, to `*`,
    and admin; never a desk key, and never as a 403 (a 404 or an answer without it)."""
    client, _ = app_client
    assert set(PROBES) | NO_CONTENT == set(REQUIRED) and not set(PROBES) & NO_CONTENT
    hr_marks = (
        teams["doc-hr"], teams["job-hr"], "PINEAPPLE-7731", "hr-share", '"hr"', "appliance/hr",
    )  # fmt: skip
    wrong: list[str] = []
    for role, target, body in PROBES.values():
        method, path = target.replace("{doc}", teams["doc-hr"]).replace(
            "{job}", teams["job-hr"]).split(" ")  # fmt: skip
        for who in (f"{role}-hr", f"{role}-desk", f"{role}-all", "admin"):
            resp = client.request(method, path, json=body, headers=bearer(teams[who]))
            if path.rsplit("/", 1)[-1] in ACTIONS:
                shown = resp.status_code < 400
            else:  # a 404 names the id asked for: that is no leak
                shown = resp.status_code < 400 and any(m in resp.text for m in hr_marks)
            if resp.status_code == 404 and "PINEAPPLE" in resp.text:
                wrong.append(f"{target} as {who}: the refusal quotes the document")
            if resp.status_code >= 400 and resp.status_code != 404:
                wrong.append(f"{target} as {who}: {resp.status_code} {resp.text[:200]}")
            elif shown != (not who.endswith("-desk")):
                wrong.append(f"{target} as {who}: HR content shown={shown} ({resp.status_code})")
    for who in ("query-hr", "query-desk"):  # the WebSocket (not in the OpenAPI document)
        with client.websocket_connect("/v1/ask/ws", headers=bearer(teams[who])) as ws:
            ws.send_text(json.dumps(QUESTION))
            events = [ws.receive_text()]
            while json.loads(events[-1])["type"] not in ("done", "error"):
                events.append(ws.receive_text())
        if ("PINEAPPLE-7731" in "".join(events)) != (who == "query-hr"):
            wrong.append(f"WS /v1/ask/ws as {who}: {events[-1][:200]}")
    assert not wrong, "\n".join(wrong)


def test_a_request_may_narrow_its_collections_but_never_widen_them(
    app_client: tuple[TestClient[Any], Path], teams: dict[str, str]
) -> None:
    client, data = app_client
    desk = bearer(teams["query-desk"])
    for body in (
        {**QUESTION, "filters": {"collections": ["hr"]}},
        {**QUESTION, "filters": {"collections": ["no-such"]}},
    ):
        resp = client.post("/v1/ask", json=body, headers=desk)
        assert resp.status_code == 404 and resp.json()["code"] == "collection_not_found"
        assert "PINEAPPLE" not in resp.text
    chat = {"model": "appliance/hr", "messages": [{"role": "user", "content": "leave form?"}]}
    resp = client.post("/v1/chat/completions", json=chat, headers=desk)
    assert resp.status_code == 404 and resp.json()["error"]["param"] == "model"
    upload = client.post(
        "/v1/documents", files=[("files", ("x.txt", b"x"))], data={"collection": "hr"},
        headers=bearer(teams["ingest-desk"]),
    )  # fmt: skip
    assert upload.status_code == 404 and "hr" in upload.text
    everyone = bearer(teams["query-all"])
    narrowed = client.post(
        "/v1/search", json={"query": QUESTION["query"], "top_k": 50,
                            "filters": {"collections": ["desk"]}}, headers=everyone,
    ).json()  # fmt: skip
    assert narrowed["hits"] and {h["document_id"] for h in narrowed["hits"]} == {teams["doc-desk"]}
    services = client.app.state.services
    services.audit.stop()  # flush the listener thread
    services.audit.start()
    lines = [json.loads(line) for line in (data / "audit.log").read_text().splitlines()]
    refused = [e for e in lines if e["event"] == "collection_refused"]
    desk_id = client.get("/v1/keys", headers=bearer(teams["admin"])).json()["keys"]
    desk_key = next(k["id"] for k in desk_id if k["name"] == "query desk")
    assert any(e["by"] == desk_key and e["collection"] == "hr" for e in refused), refused


def test_status_counts_only_the_documents_a_key_reads(
    app_client: tuple[TestClient[Any], Path], teams: dict[str, str]
) -> None:
    """`documents` in /v1/status: how many HR documents exist is not a desk key's to know."""
    client, _ = app_client

    def counted(who: str) -> int:
        resp = client.get("/v1/status", headers=bearer(teams[who]))
        assert resp.status_code == 200, resp.text
        return int(resp.json()["documents"])

    assert counted("query-desk") == counted("query-hr") == 1
    assert counted("admin") == counted("query-all") >= 2
