"""The API in process (Litestar TestClient runs the real lifespan: real models, real store)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.server.app import create_app
from tests.docs_factory import FACTS, make_all

pytestmark = pytest.mark.slow


def admin_key(data_dir: Path) -> str:
    return (data_dir / "secrets" / "admin.key").read_text().strip()


@pytest.fixture(scope="module")
def client(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    from appliance.config import load_settings
    from tests.conftest import REPO, server_env

    data = tmp_path_factory.mktemp("data")
    settings = load_settings(REPO / "configs" / "appliance.toml", server_env(data, models_dir))
    with TestClient(create_app(settings), timeout=120) as c:  # hang guard per request
        c.headers["Authorization"] = f"Bearer {admin_key(data)}"
        yield c


@pytest.fixture(scope="module")
def ingested(client: TestClient[Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    docs = make_all(tmp_path_factory.mktemp("docs"))
    files = [("files", (p.name, p.read_bytes())) for p in docs.values()]
    files.append(("files", ("virus.exe", b"MZ\x90\x00")))
    files.append(("files", ("empty.txt", b"")))
    resp = client.post("/v1/documents", files=files)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    job = wait_for_job(client, job_id)
    return {"job": job, "docs": docs}


def wait_for_job(client: TestClient[Any], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300  # hang guard: the largest job here takes ~10 s alone
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_job_reports_each_file(ingested: dict[str, Any]) -> None:
    job = ingested["job"]
    assert job["state"] == "done"
    by_name = {f["file_name"]: f for f in job["files"]}
    for path in ingested["docs"].values():
        assert by_name[path.name]["state"] == "done"
        assert by_name[path.name]["chunks_done"] == by_name[path.name]["chunks_total"] > 0
    assert by_name["virus.exe"]["state"] == "failed"
    assert "unsupported file type `.exe`" in by_name["virus.exe"]["error"]
    assert by_name["empty.txt"]["state"] == "failed"
    assert "empty" in by_name["empty.txt"]["error"]
    assert job["files_failed"] == 2 and job["files_done"] == 4


def test_documents_are_listed_and_readable(
    client: TestClient[Any], ingested: dict[str, Any]
) -> None:
    listing = client.get("/v1/documents").json()
    names = {d["file_name"] for d in listing["documents"]}
    assert names == {p.name for p in ingested["docs"].values()}
    pdf = next(d for d in listing["documents"] if d["file_name"].endswith(".pdf"))
    assert pdf["pages"] == 3 and pdf["chunks"] > 0
    assert client.get(f"/v1/documents/{pdf['id']}").json() == pdf
    missing = client.get("/v1/documents/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_reupload_creates_no_duplicates(client: TestClient[Any], ingested: dict[str, Any]) -> None:
    before = client.get("/v1/documents").json()["total"]
    pdf = ingested["docs"]["pdf"]
    resp = client.post("/v1/documents", files=[("files", ("copy.pdf", pdf.read_bytes()))])
    job = wait_for_job(client, resp.json()["job_id"])
    assert job["files"][0]["state"] == "skipped"
    assert client.get("/v1/documents").json()["total"] == before


@pytest.mark.parametrize("kind", ["pdf", "docx", "html", "md"])
def test_search_finds_each_fact(
    client: TestClient[Any], ingested: dict[str, Any], kind: str
) -> None:
    resp = client.post("/v1/search", json={"query": FACTS[kind], "top_k": 3})
    assert resp.status_code == 200, resp.text
    top = resp.json()["hits"][0]
    assert top["file_name"] == ingested["docs"][kind].name
    assert FACTS[kind] in top["text"]
    if kind == "pdf":
        assert top["page"] == 2


def test_search_filters_by_document(client: TestClient[Any], ingested: dict[str, Any]) -> None:
    docs = client.get("/v1/documents").json()["documents"]
    md = next(d for d in docs if d["file_name"].endswith(".md"))
    resp = client.post(
        "/v1/search", json={"query": FACTS["pdf"], "top_k": 10, "document_ids": [md["id"]]}
    )
    assert {h["document_id"] for h in resp.json()["hits"]} == {md["id"]}


def test_ask_answers_with_citations(client: TestClient[Any], ingested: dict[str, Any]) -> None:
    resp = client.post(
        "/v1/ask",
        json={"query": "What is the name of the third floor printer?", "temperature": 0},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "Hermes" in body["answer"]
    assert body["citations"][0]["file_name"] == "faq.html"
    assert body["timings"]["completion_tokens"] > 0
    assert body["strategy"] == "brief"  # generation.prompt
    assert any("Hermes" in e["text"] and e["file_name"] == "faq.html" for e in body["evidence"])
    assert 0.0 <= body["grounded"] <= 1.0


def stored_chunks(client: TestClient[Any]) -> dict[tuple[str, int], str]:
    """Every stored chunk's text, read back through search (wide top_k)."""
    hits = client.post("/v1/search", json={"query": "the", "top_k": 50}).json()["hits"]
    return {(h["document_id"], h["chunk_index"]): h["text"] for h in hits}


QUESTIONS_FOR_EVIDENCE = [
    "What is the name of the third floor printer?",
    "How long are nightly backups kept?",
    "How often does the VPN password for contractors rotate?",
    "When is the emergency generator tested?",
]


@pytest.mark.parametrize("strategy", ["sentences", "top1", "top3", "top5", "legacy"])
def test_evidence_offsets_cut_the_sentence_out_of_the_stored_chunk(
    client: TestClient[Any], ingested: dict[str, Any], strategy: str
) -> None:
    chunks = stored_chunks(client)
    for question in QUESTIONS_FOR_EVIDENCE:
        body = {"query": question, "temperature": 0, "strategy": strategy, "max_tokens": 48}
        resp = client.post("/v1/ask", json=body)
        assert resp.status_code == 200, resp.text
        done = resp.json()
        assert done["strategy"] == strategy
        assert done["evidence"], question
        for e in done["evidence"]:
            text = chunks[(e["document_id"], e["chunk_index"])]
            assert text[e["start"] : e["end"]] == e["text"]
            cited = done["citations"][e["citation"] - 1]  # the passage it comes from
            assert (cited["document_id"], cited["chunk_index"]) == (
                e["document_id"],
                e["chunk_index"],
            )
        assert 0.0 <= done["grounded"] <= 1.0
        answer = re.sub(r"\s*\[\d+(?:,\s*\d+)*\]", "", done["answer"])
        assert all(u and u in answer for u in done["unsupported"])
        assert done["finish_reason"] in ("stop", "length", "repetition")


def test_grounded_separates_a_supported_answer_from_an_unsupported_one(
    client: TestClient[Any], ingested: dict[str, Any]
) -> None:
    """The score itself, on answers we choose: the service grounds any answer text."""
    from appliance.query.pipeline import AskParams

    services = client.app.state.services
    query = services.query
    params = AskParams(
        question="How long are nightly backups kept?", top_k=5, max_tokens=8, temperature=0.0
    )

    async def grounded(answer: str) -> tuple[float, list[str]]:
        prepared = await query.prepare(params)
        await prepared.cancel()
        g = await query.ground(params, prepared.plan, prepared.found.vector, answer)
        return g.grounded, g.unsupported

    supported = "Nightly backups are kept for 35 days on the NAS called Vault."
    invented = "The moon landing was filmed in a studio in Nevada by clowns."
    score, unsupported = client.blocking_portal.call(grounded, f"{supported} {invented}")
    assert score == 0.5 and unsupported == [invented]
    assert client.blocking_portal.call(grounded, supported)[0] == 1.0
    assert client.blocking_portal.call(grounded, invented)[0] == 0.0
    assert client.blocking_portal.call(grounded, "")[0] == 0.0


def test_the_answer_favours_the_words_of_what_the_model_reads(
    client: TestClient[Any], ingested: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy bias: the generation favours exactly the document text in the prompt, by
    the strategy's `copy_bias` (the default `brief`: 3; `sentences`: off)."""
    from appliance.query.pipeline import AskParams

    services = client.app.state.services
    asked: list[dict[str, Any]] = []
    real = services.generator.stream

    def recording(prompt_tokens: list[int], **kwargs: Any) -> Any:
        asked.append(kwargs)
        return real(prompt_tokens, **kwargs)

    monkeypatch.setattr(services.generator, "stream", recording)

    async def prepare(strategy: str | None) -> str:
        params = AskParams(
            question="How long are nightly backups kept?", top_k=5, max_tokens=8,
            temperature=0.0, strategy=strategy,
        )  # fmt: skip
        prepared = await services.query.prepare(params)
        await prepared.cancel()
        return " ".join(e.text for e in prepared.plan.prompt.excerpts)

    read = client.blocking_portal.call(prepare, None)
    assert "35 days" in read and asked[-1]["favour"] == read
    assert asked[-1]["favour_bias"] == 3.0
    client.blocking_portal.call(prepare, "sentences")
    assert asked[-1]["favour_bias"] == 0.0


def test_sse_stream_sends_evidence_tokens_then_done(
    client: TestClient[Any], ingested: dict[str, Any]
) -> None:
    resp = client.post("/v1/ask/stream", json={"query": "When are backups run?", "max_tokens": 40})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [line[6:].strip() for line in resp.text.splitlines() if line.startswith("event:")]
    assert events[0] == "evidence" and events.count("token") > 1 and events[-1] == "done"
    done = json.loads(resp.text.strip().splitlines()[-1][5:])
    assert done["type"] == "done" and done["citations"]
    assert done["evidence"] and 0.0 <= done["grounded"] <= 1.0


def test_websocket_streams_the_same_events(
    client: TestClient[Any], ingested: dict[str, Any]
) -> None:
    with client.websocket_connect("/v1/ask/ws") as ws:
        ws.send_text(json.dumps({"query": "Where are backups kept?", "max_tokens": 30}))
        kinds = []
        while True:
            event = json.loads(ws.receive_text())
            kinds.append(event["type"])
            if event["type"] not in ("evidence", "token"):
                break
        assert kinds[0] == "evidence" and kinds.count("token") > 1 and kinds[-1] == "done"
        assert event["citations"][0]["file_name"] == "backups.md"
        assert any(e["file_name"] == "backups.md" for e in event["evidence"])
        ws.send_text(json.dumps({"query": "", "top_k": "x"}))
        error = json.loads(ws.receive_text())
        assert error["type"] == "error" and error["status"] == 400
        ws.send_text(json.dumps({"query": "Where?", "strategy": "nope"}))
        error = json.loads(ws.receive_text())
        assert error["status"] == 400 and "strategy" in error["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/search", {"top_k": 3}, "query"),
        ("/v1/search", {"query": "x", "top_k": "three"}, "top_k"),
        ("/v1/search", {"query": "x", "top_k": 0}, "top_k"),
        ("/v1/search", {"query": "x", "top_k": 51}, "top_k"),
        ("/v1/search", {"query": ""}, "query"),
        ("/v1/search", {"query": "x", "colour": 1}, "colour"),
        ("/v1/ask", {"query": "x", "temperature": 9}, "temperature"),
        ("/v1/ask", {"query": "x", "max_tokens": -1}, "max_tokens"),
        ("/v1/ask/stream", {"query": "x" * 5000}, "query"),
        ("/v1/search", {"query": "x", "document_ids": "abc"}, "document_ids"),
        ("/v1/ask", {"query": "x", "strategy": "no-such-prompt"}, "strategy"),
        ("/v1/ask/stream", {"query": "x", "strategy": ""}, "strategy"),
        ("/v1/ask/stream", {"query": "x", "strategy": "nope"}, "strategy"),
    ],
)
def test_bad_fields_get_400_naming_the_field(
    client: TestClient[Any], path: str, body: dict[str, Any], field: str
) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert field in json.dumps(resp.json())


def test_upload_without_files_names_the_field(client: TestClient[Any]) -> None:
    resp = client.post("/v1/documents", files=[("attachment", ("a.txt", b"hello"))])
    assert resp.status_code == 400
    assert "files" in resp.text


def test_unknown_route_is_404(client: TestClient[Any]) -> None:
    assert client.get("/v1/nothing-here").status_code == 404


def test_health_readiness_and_metrics(client: TestClient[Any], ingested: dict[str, Any]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {
        "embedding_model",
        "chat_model",
        "vector_store",
        "journal",
    }
    client.post("/v1/search", json={"query": "printer"})
    text = client.get("/metrics").text
    for needle in (
        'appliance_stage_seconds_count{stage="embed_query"}',
        'appliance_stage_seconds_count{stage="search"}',
        "appliance_http_requests_total",
        "appliance_chunks_ingested_total",
        'appliance_model_info{arch="llama"',
        'appliance_queue_depth{worker="generation"}',
        'appliance_ingest_jobs{state="done"}',
    ):
        assert needle in text, needle


def test_openapi_and_offline_swagger(client: TestClient[Any]) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/ask/stream" in spec["paths"] and "/v1/documents" in spec["paths"]
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in page.text
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200


def test_chunks_show_what_the_index_holds(
    client: TestClient[Any], ingested: dict[str, Any]
) -> None:
    docs = client.get("/v1/documents").json()["documents"]
    pdf = next(d for d in docs if d["file_name"].endswith(".pdf"))
    page = client.get(f"/v1/documents/{pdf['id']}/chunks", params={"limit": 1}).json()
    assert page["total"] == pdf["chunks"] and page["file_name"] == pdf["file_name"]
    assert [c["index"] for c in page["chunks"]] == [0] and page["chunks"][0]["page"] == 1
    everything = client.get(f"/v1/documents/{pdf['id']}/chunks").json()["chunks"]
    assert FACTS["pdf"].split()[0] in " ".join(c["text"] for c in everything)
    assert client.get("/v1/documents/nope/chunks").status_code == 404
    bad = client.get(f"/v1/documents/{pdf['id']}/chunks", params={"limit": 0})
    assert bad.status_code == 400 and "limit" in bad.text


def test_reindex_replaces_points_in_place(
    client: TestClient[Any], ingested: dict[str, Any]
) -> None:
    docs = client.get("/v1/documents").json()["documents"]
    md = next(d for d in docs if d["file_name"].endswith(".md"))
    before = client.get("/metrics").text
    resp = client.post(f"/v1/documents/{md['id']}/reindex")
    assert resp.status_code == 202, resp.text
    job = wait_for_job(client, resp.json()["job_id"])
    assert job["state"] == "done", job
    assert job["files"][0]["chunks_done"] == md["chunks"] == job["files"][0]["chunks_total"]
    after = client.get(f"/v1/documents/{md['id']}").json()
    assert after["chunks"] == md["chunks"] and after["created_at"] >= md["created_at"]
    points = re.compile(r"^appliance_store_points (\S+)$", re.M)
    assert points.findall(before) == points.findall(client.get("/metrics").text)  # no duplicate
    hits = client.post("/v1/search", json={"query": FACTS["md"], "top_k": 3}).json()["hits"]
    assert hits[0]["document_id"] == md["id"]
    assert client.post("/v1/documents/nope/reindex").status_code == 404


def test_status_and_logs_for_the_console(client: TestClient[Any]) -> None:
    import logging

    status = client.get("/v1/status").json()
    assert {m["role"] for m in status["models"]} == {"chat", "embedding"}
    chat = next(m for m in status["models"] if m["role"] == "chat")
    assert chat["slots"] >= 1 and chat["context_tokens"] >= 256 and chat["file_size_bytes"] > 0
    assert status["store"] == "embedded" and status["data_dir_bytes"] > 0
    assert 0 < status["disk_free_bytes"] <= status["disk_total_bytes"]
    first = client.get("/v1/logs").json()
    logging.getLogger("appliance.test").warning("console log line %d", 7)
    logging.getLogger("appliance.test").debug("below the filter")
    page = client.get("/v1/logs", params={"after": first["last_seq"], "level": "warning"}).json()
    assert [line["message"] for line in page["lines"]] == ["console log line 7"]
    assert page["lines"][0]["level"] == "warning" and page["last_seq"] > first["last_seq"]
    bad = client.get("/v1/logs", params={"level": "loud"})
    assert bad.status_code == 400 and "level" in bad.text


def test_delete_removes_every_chunk(client: TestClient[Any], ingested: dict[str, Any]) -> None:
    docs = client.get("/v1/documents").json()["documents"]
    docx = next(d for d in docs if d["file_name"].endswith(".docx"))
    assert client.delete(f"/v1/documents/{docx['id']}").status_code == 204
    hits = client.post("/v1/search", json={"query": FACTS["docx"], "top_k": 50}).json()["hits"]
    assert all(h["document_id"] != docx["id"] for h in hits)
    assert client.get(f"/v1/documents/{docx['id']}").status_code == 404
    assert client.delete(f"/v1/documents/{docx['id']}").status_code == 404


def test_cancelling_a_queued_job(client: TestClient[Any], tmp_path: Path) -> None:
    big = "\n".join(f"Line {i} about network switches and routers." for i in range(3000))
    files = [("files", (f"big{i}.txt", f"{i}\n{big}".encode())) for i in range(2)]
    first = client.post("/v1/documents", files=files).json()["job_id"]
    second = client.post("/v1/documents", files=[("files", ("x.txt", b"queued text"))])
    second_id = second.json()["job_id"]
    cancelled = client.post(f"/v1/jobs/{second_id}/cancel").json()
    assert cancelled["state"] == "cancelled"
    client.post(f"/v1/jobs/{first}/cancel")
    job = wait_for_job(client, first)
    assert job["state"] == "cancelled"
    names = {d["file_name"] for d in client.get("/v1/documents").json()["documents"]}
    assert "x.txt" not in names
    # a cancelled file leaves no chunks behind
    for f in job["files"]:
        if f["state"] == "cancelled" and f["document_id"]:
            hits = client.post(
                "/v1/search", json={"query": "network switches", "top_k": 50}
            ).json()["hits"]
            assert all(h["document_id"] != f["document_id"] for h in hits)
    assert client.get("/v1/jobs/nope").status_code == 404


def test_a_deadline_during_generation_is_504_not_500(
    models_dir: Path, tmp_path: Path, ingested: dict[str, Any]
) -> None:
    from appliance.config import load_settings
    from tests.conftest import REPO, server_env

    # the deadline under test: far shorter than any 300-token answer, on any machine
    env = server_env(tmp_path / "data", models_dir, APPLIANCE__GENERATION__DEADLINE_S="0.05")
    settings = load_settings(REPO / "configs" / "appliance.toml", env)
    with TestClient(create_app(settings), timeout=120) as slow:  # hang guard per request
        slow.headers["Authorization"] = f"Bearer {admin_key(tmp_path / 'data')}"
        body = {"query": "Tell me a long story.", "max_tokens": 300, "strategy": "sentences"}
        resp = slow.post("/v1/ask", json=body)  # "sentences": no sentence stop, it runs on
        assert resp.status_code == 504, resp.text
        assert "generation.deadline_s" in resp.json()["detail"]
        assert slow.get("/healthz").status_code == 200
