"""Evidence first (issue 22): an answer opens with an `evidence` event before any token,
on Server-Sent Events, the WebSocket and a streamed chat completion (its first chunk's
`rag`), and `/v1/ask` returns it as `first_evidence`. Every sentence's offsets cut its
text out of the stored chunk verbatim, for a sentence strategy (the candidates its prompt
embedded) and a passage one (candidates embedded for it). The app in process with the
real models and store, as tests/api/test_one_ask_path.py, whose fixture this reuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.test_one_ask_path import QUESTION, client  # noqa: F401 - the module's server

pytestmark = pytest.mark.slow

STRATEGIES = ["sentences", "top3"]


def ask(strategy: str) -> dict[str, Any]:
    return {"query": QUESTION, "max_tokens": 16, "temperature": 0, "strategy": strategy}


def assert_verbatim(client: TestClient[Any], evidence: list[dict[str, Any]]) -> None:  # noqa: F811
    """Each sentence is `text[start:end]` of its stored chunk, and one holds the fact."""
    assert evidence, "no evidence"
    for e in evidence:
        page = client.get(
            f"/v1/documents/{e['document_id']}/chunks",
            params={"offset": e["chunk_index"], "limit": 1},
        ).json()
        [chunk] = page["chunks"]
        assert chunk["text"][e["start"] : e["end"]] == e["text"], e
    assert any("35 days" in e["text"] for e in evidence), evidence


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    names = [line[6:].strip() for line in text.splitlines() if line.startswith("event:")]
    datas = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    return list(zip(names, datas, strict=True))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_stream_opens_with_evidence_before_any_token(
    client: TestClient[Any],  # noqa: F811
    strategy: str,
) -> None:
    resp = client.post("/v1/ask/stream", json=ask(strategy))
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    kinds = [name for name, _ in events]
    assert kinds[0] == "evidence" and kinds.count("evidence") == 1, kinds
    assert kinds[1:-1] == ["token"] * (len(kinds) - 2) and kinds[-1] == "done", kinds
    first, done = events[0][1], events[-1][1]
    assert first["type"] == "evidence"
    assert_verbatim(client, first["evidence"])
    assert_verbatim(client, done["evidence"])  # the answer-aware evidence still comes last


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ask_returns_the_first_evidence_as_a_field(
    client: TestClient[Any],  # noqa: F811
    strategy: str,
) -> None:
    resp = client.post("/v1/ask", json=ask(strategy))
    assert resp.status_code == 200, resp.text
    assert_verbatim(client, resp.json()["first_evidence"])


def test_the_websocket_opens_with_evidence_before_any_token(
    client: TestClient[Any],  # noqa: F811
) -> None:
    with client.websocket_connect("/v1/ask/ws") as ws:
        ws.send_text(json.dumps(ask("sentences")))
        events = [json.loads(ws.receive_text())]
        while events[-1]["type"] in ("evidence", "token"):
            events.append(json.loads(ws.receive_text()))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "evidence" and "evidence" not in kinds[1:] and kinds[-1] == "done", kinds
    assert_verbatim(client, events[0]["evidence"])


def test_a_streamed_chat_completion_carries_the_evidence_in_its_first_chunk(
    client: TestClient[Any],  # noqa: F811
) -> None:
    model = client.get("/v1/models").json()["data"][0]["id"]
    body = {
        "model": model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 16,
        "temperature": 0, "stream": True,
    }  # fmt: skip
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    chunks = [
        json.loads(line[5:])
        for line in resp.text.splitlines()
        if line.startswith("data:") and line[5:].strip() != "[DONE]"
    ]
    first = chunks[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}, first
    assert first["rag"]["query"] == QUESTION
    assert_verbatim(client, first["rag"]["evidence"])
    assert all("rag" not in c for c in chunks[1:-1])  # words carry no rag
    assert "citations" in chunks[-1]["rag"]  # the whole rag on the finishing chunk


def counter(client: TestClient[Any], name: str) -> float:  # noqa: F811
    """A Prometheus counter's value from /metrics."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


def test_an_extractive_answer_quotes_the_evidence_without_the_chat_model(
    client: TestClient[Any],  # noqa: F811
) -> None:
    tokens = counter(client, "appliance_tokens_generated_total")
    prompts = counter(client, "appliance_prompt_tokens_total")
    resp = client.post("/v1/ask", json=ask("extract"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["strategy"] == "extract" and body["finish_reason"] == "stop"
    assert body["timings"]["completion_tokens"] == 0
    first = body["first_evidence"]
    assert_verbatim(client, first)
    # each of the three best, verbatim (with a neighbour it needs: tests/unit/test_extract.py)
    assert all(" ".join(e["text"].split()) in body["answer"] for e in first[:3])
    assert body["answer"].count("[") >= 1 and "35 days" in body["answer"]
    assert body["grounded"] == 1.0  # every sentence is the documents' own
    assert body["citations"] and all(e["citation"] >= 1 for e in first)
    # the chat model read and wrote nothing
    assert counter(client, "appliance_tokens_generated_total") == tokens
    assert counter(client, "appliance_prompt_tokens_total") == prompts


def test_an_extractive_answer_streams_evidence_one_piece_then_done(
    client: TestClient[Any],  # noqa: F811
) -> None:
    resp = client.post("/v1/ask/stream", json=ask("extract"))
    assert resp.status_code == 200, resp.text
    events = sse_events(resp.text)
    assert [name for name, _ in events] == ["evidence", "token", "done"]
    assert events[1][1]["text"] == events[2][1]["answer"]
    model = client.get("/v1/models").json()["data"][0]["id"]
    body = {
        "model": model, "messages": [{"role": "user", "content": QUESTION}],
        "strategy": "extract",
    }  # fmt: skip
    completion = client.post("/v1/chat/completions", json=body).json()
    assert completion["choices"][0]["message"]["content"] == events[2][1]["answer"]
    assert completion["rag"]["strategy"] == "extract"
