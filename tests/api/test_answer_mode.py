"""Which answer a question gets when it names no strategy (`generation.answer_mode`).

The shipped default is "auto": with the default 135M chat model the documents' sentences
answer (bench/RESULTS.md: right 0.62 / 0.57 of the time by extract, 0.40 / 0.15
generated, on the PostgreSQL and Apache sets), with a model of `generate_from_params`
weights or more, or an external server, the model writes. A request may still ask for
either. The app in process with the real models and store, as tests/api/test_api.py,
on the shipped config (no answer_mode override)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.config.generation import GenerationSettings
from appliance.models.sizing import read_gguf_info
from appliance.query.params import resolve_answer_mode
from tests.api.test_one_ask_path import serving_backups

pytestmark = pytest.mark.slow

QUESTION = "How long are nightly backups kept?"


@pytest.fixture(scope="module")
def client(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    # the shipped answer_mode ("auto"), not server_env's "generate"
    with serving_backups(
        models_dir, tmp_path_factory, APPLIANCE__GENERATION__ANSWER_MODE=None
    ) as c:
        yield c


def test_the_default_model_answers_with_the_documents_sentences(
    client: TestClient[Any],
) -> None:
    resp = client.post("/v1/ask", json={"query": QUESTION})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["strategy"] == "extract", body
    assert body["timings"]["completion_tokens"] == 0  # the chat model was not called
    assert "35 days" in body["answer"] and "[1]" in body["answer"], body["answer"]


def test_the_stream_and_chat_completions_follow_the_default(client: TestClient[Any]) -> None:
    resp = client.post("/v1/ask/stream", json={"query": QUESTION})
    assert resp.status_code == 200, resp.text
    lines = [json.loads(x[5:]) for x in resp.text.splitlines() if x.startswith("data:")]
    assert lines[0]["type"] == "evidence" and lines[-1]["type"] == "done", lines
    assert lines[-1]["strategy"] == "extract", lines[-1]
    model = client.get("/v1/models").json()["data"][0]["id"]
    chat = client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert chat.status_code == 200, chat.text
    assert "35 days" in chat.json()["choices"][0]["message"]["content"], chat.text
    assert chat.json()["usage"]["completion_tokens"] == 0, chat.text


def test_a_request_may_still_ask_the_model_to_write(client: TestClient[Any]) -> None:
    resp = client.post(
        "/v1/ask",
        json={"query": QUESTION, "strategy": "generate", "max_tokens": 16, "temperature": 0},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["strategy"] == "brief", body  # generation.prompt
    assert body["timings"]["completion_tokens"] > 0
    model = client.get("/v1/models").json()["data"][0]["id"]
    chat = client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": QUESTION}],
              "strategy": "generate", "max_tokens": 16, "temperature": 0},
    )  # fmt: skip
    assert chat.status_code == 200, chat.text
    assert chat.json()["usage"]["completion_tokens"] > 0, chat.text
    with client.websocket_connect("/v1/ask/ws") as ws:
        ws.send_text(json.dumps({"query": QUESTION, "strategy": "generate", "max_tokens": 16}))
        while (event := json.loads(ws.receive_text()))["type"] in ("evidence", "token"):
            pass
    assert event["type"] == "done" and event["strategy"] == "brief", event


def test_a_misspelt_strategy_is_refused_with_every_name(client: TestClient[Any]) -> None:
    resp = client.post("/v1/ask", json={"query": QUESTION, "strategy": "generat"})
    assert resp.status_code == 400, resp.text
    assert "extract" in resp.text and "generate" in resp.text and "brief" in resp.text


def test_auto_follows_the_chat_model_size(chat_model: Path) -> None:
    weights = read_gguf_info(chat_model).n_params
    assert weights is not None
    assert 100_000_000 < weights < 200_000_000  # SmolLM2-135M
    auto = GenerationSettings()
    assert auto.answer_mode == "auto"
    assert resolve_answer_mode(auto, weights)[0] == "extract"
    assert resolve_answer_mode(auto, 1_500_000_000)[0] == "generate"  # a sysadmin's 1.5B
    assert resolve_answer_mode(auto, weights, external=True)[0] == "generate"
    assert resolve_answer_mode(auto, None)[0] == "generate"  # not counted: as before auto
    lower = GenerationSettings(generate_from_params=weights)
    assert resolve_answer_mode(lower, weights)[0] == "generate"
    for mode in ("generate", "extract"):
        assert resolve_answer_mode(GenerationSettings(answer_mode=mode), weights)[0] == mode
