"""The OpenAI-compatible API driven by the real `openai` SDK against the real server:
models, chat completions (RAG and plain, streaming and not), embeddings, errors."""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import server_env
from tests.e2e.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DOC_NAME = "zephyr-pump.md"
DOC = """# Cooling pump maintenance

The Zephyr-9 cooling pump in building K is serviced every 47 days by the Orion
maintenance team. Its spare impellers are kept in cabinet 12 of the basement store.

## Visitors

Visitors to building K sign in at the north desk and wear a green badge.
"""
QUESTION = "How often is the Zephyr-9 cooling pump serviced?"


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("openai-data")
    log = tmp_path_factory.mktemp("openai-logs") / "server.log"
    proc = ServerProcess(server_env(data, models_dir), log).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def keys(server: ServerProcess) -> dict[str, str]:
    """A query key and an ingest key, made by the admin; the document uploaded."""
    made: dict[str, str] = {}
    with server.client() as client:
        for role in ("query", "ingest"):
            resp = client.post("/v1/keys", json={"name": f"openai {role}", "role": role})
            assert resp.status_code == 201, resp.text
            made[role] = resp.json()["key"]
        resp = client.post("/v1/documents", files=[("files", (DOC_NAME, DOC.encode()))])
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        deadline = time.monotonic() + 300  # hang guard: one small document (~1 s alone)
        while time.monotonic() < deadline:
            job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert job["state"] == "done", job
    return made


def sdk(server: ServerProcess, key: str) -> openai.OpenAI:
    """`timeout`: a hang guard per request (the longest, an answer, takes ~1 s alone)."""
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client(server: ServerProcess, keys: dict[str, str]) -> Iterator[openai.OpenAI]:
    with sdk(server, keys["query"]) as c:
        yield c


@pytest.fixture(scope="module")
def model_ids(client: openai.OpenAI) -> dict[str, str]:
    ids = [m.id for m in client.models.list()]
    return {"chat": ids[0], "embedding": ids[1]}


def test_models_lists_the_chat_and_the_embedding_model(client: openai.OpenAI) -> None:
    """Then `appliance` (RAG over every collection the key reads) and one
    `appliance/NAME` per collection."""
    models = list(client.models.list())
    assert [m.id for m in models] == [
        "SmolLM2-135M-Instruct.Q8_0", "all-MiniLM-L6-v2.F16", "appliance", "appliance/default",
    ]  # fmt: skip
    assert all(m.object == "model" and m.owned_by == "appliance" for m in models)
    assert all(m.created > 1_600_000_000 for m in models)


def test_chat_answers_from_the_documents_with_citations(
    client: openai.OpenAI, model_ids: dict[str, str]
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini",  # any name: the appliance's chat model answers
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello."},
            {"role": "assistant", "content": "Hello! Ask about the documents."},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
        max_tokens=48,
        temperature=0,
    )
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == model_ids["chat"]
    [choice] = completion.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None and usage.completion_tokens >= 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens > 50  # the passages are in the prompt
    # the extra field: kept by the SDK, ignored by its typed model
    assert completion.model_extra is not None
    rag = completion.model_extra["rag"]
    assert rag == completion.model_dump()["rag"]
    assert rag["query"] == QUESTION  # the last user message is the question
    assert rag["citations"][0]["file_name"] == DOC_NAME
    assert "47 days" in rag["citations"][0]["snippet"]
    assert rag["timings"]["completion_tokens"] == usage.completion_tokens
    assert set(rag) >= {"evidence", "grounded", "unsupported", "strategy"}


def test_chat_streams_evidence_first_then_rag_on_the_last_and_usage(
    client: openai.OpenAI,
) -> None:
    stream = client.chat.completions.create(
        model="any",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)  # the SDK stops at `data: [DONE]`
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1 and "".join(texts).strip()
    assert chunks[0].choices[0].delta.role == "assistant"
    finished = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finished) == 1 and finished[0] is chunks[-2]
    assert finished[0].choices[0].finish_reason in ("stop", "length")
    assert finished[0].model_extra is not None
    rag = finished[0].model_extra["rag"]
    assert rag["citations"][0]["file_name"] == DOC_NAME
    opening = (chunks[0].model_extra or {})["rag"]  # the first evidence, before any word
    assert opening["query"] == QUESTION and opening["evidence"]
    assert not chunks[0].choices[0].delta.content
    assert all("rag" not in (c.model_extra or {}) for c in chunks[1:] if c is not finished[0])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == rag["timings"]["completion_tokens"]
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_field(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": QUESTION}], max_tokens=8,
            stream=True,
        )
    )  # fmt: skip
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.usage is None and "usage" not in c.model_fields_set for c in chunks)


def test_rag_false_is_plain_chat_without_citations(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="any",
        messages=[
            {"role": "developer", "content": "You answer in one short sentence."},
            {"role": "user", "content": "What colour is the sky on a clear day?"},
        ],
        max_completion_tokens=24,
        temperature=0,
        extra_body={"rag": False},
    )
    assert completion.choices[0].message.content
    assert "rag" not in (completion.model_extra or {})
    assert completion.usage is not None
    assert 0 < completion.usage.prompt_tokens < 60  # the messages only, no passages
    assert completion.usage.completion_tokens <= 24


async def test_async_client_streams_plain_chat(server: ServerProcess, keys: dict[str, str]) -> None:
    async with openai.AsyncOpenAI(  # timeout: a hang guard, as in sdk()
        base_url=f"{server.url}/v1", api_key=keys["query"], max_retries=0, timeout=120
    ) as client:
        stream = await client.chat.completions.create(
            model="any",
            messages=[{"role": "user", "content": "Count from one to ten."}],
            max_tokens=30,
            stream=True,
            extra_body={"rag": False},
        )
        chunks = [chunk async for chunk in stream]
    texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for t in texts if t) > 1
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all("rag" not in (c.model_extra or {}) for c in chunks)


def test_the_stream_is_plain_data_events_ending_with_done(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    body = {
        "model": "any", "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 12, "stream": True,
    }  # fmt: skip
    with httpx.stream(  # timeout: a hang guard per read (12 tokens take well under 1 s)
        "POST", f"{server.url}/v1/chat/completions", json=body, timeout=120,
        headers={"Authorization": f"Bearer {keys['query']}"},
    ) as resp:  # fmt: skip
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: {") and "\n" not in e for e in events[:-2])
    assert json.loads(events[-3][6:])["choices"][0]["finish_reason"] in ("stop", "length")


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (_norm(a) * _norm(b))


def test_embeddings_single_with_the_sdk_default_encoding(
    client: openai.OpenAI, model_ids: dict[str, str]
) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="The pump is serviced every 47 days."
    )
    sent = json.loads(raw.http_request.content)
    assert sent["encoding_format"] == "base64"  # what the SDK asks for by default
    wire = raw.http_response.json()
    assert isinstance(wire["data"][0]["embedding"], str)
    assert len(base64.b64decode(wire["data"][0]["embedding"])) == 384 * 4
    result = raw.parse()  # the SDK decodes it to floats
    [item] = result.data
    assert item.object == "embedding" and item.index == 0
    assert len(item.embedding) == 384 and abs(_norm(item.embedding) - 1) < 1e-4
    assert result.model == model_ids["embedding"]
    assert result.usage.prompt_tokens == result.usage.total_tokens > 5


def test_embeddings_batch_as_floats_matches_singles_and_ranks(client: openai.OpenAI) -> None:
    texts = [
        "The Zephyr-9 cooling pump is serviced every 47 days.",
        "Visitors sign in at the north desk.",
        QUESTION,
    ]
    batch = client.embeddings.create(model="any", input=texts, encoding_format="float")
    assert [d.index for d in batch.data] == [0, 1, 2]
    vectors = [d.embedding for d in batch.data]
    assert all(len(v) == 384 for v in vectors)
    single = client.embeddings.create(model="any", input=texts[1]).data[0].embedding  # base64
    assert max(abs(a - b) for a, b in zip(single, vectors[1], strict=True)) < 1e-5
    assert _cos(vectors[2], vectors[0]) > _cos(vectors[2], vectors[1])
    short = client.embeddings.create(model="any", input=texts[0], dimensions=64).data[0]
    assert len(short.embedding) == 64 and abs(_norm(short.embedding) - 1) < 1e-4


def test_a_wrong_key_raises_authentication_error(server: ServerProcess) -> None:
    with sdk(server, "rag_deadbeef_not-a-real-secret") as bad:
        with pytest.raises(openai.AuthenticationError) as refused:
            bad.models.list()
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="any", messages=[{"role": "user", "content": "x"}])
    assert "unknown or revoked API key" in str(refused.value)
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "invalid_api_key"
    # no key at all: 401 in OpenAI's error shape, with the challenge
    resp = httpx.post(f"{server.url}/v1/embeddings", json={"model": "m", "input": "x"})
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.json()["error"]["type"] == "authentication_error"


def test_a_key_without_the_query_role_is_refused(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    with (
        sdk(server, keys["ingest"]) as ingest,
        pytest.raises(openai.PermissionDeniedError, match="`query` role"),
    ):
        ingest.embeddings.create(model="any", input="x")


def test_bad_requests_raise_bad_request_error_naming_the_field(client: openai.OpenAI) -> None:
    def refused(call: Any, **kwargs: Any) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as caught:
            call(**kwargs)
        return caught.value

    chat, embed = client.chat.completions.create, client.embeddings.create
    user = [{"role": "user", "content": "hi"}]
    err = refused(chat, model="any", messages=user, n=2)
    assert err.body["param"] == "n" and "n: " in str(err)  # type: ignore[index]
    image = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}
    ]
    err = refused(chat, model="any", messages=image)
    assert err.body["param"] == "messages[0].content[0].type"  # type: ignore[index]
    assert "only text content" in str(err)
    err = refused(chat, model="any", messages=[])
    assert err.body["param"] == "messages"  # type: ignore[index]
    err = refused(chat, model="any", messages=[{"role": "tool", "content": "x"}])
    assert "messages[0].role" in str(err)
    err = refused(chat, model="any", messages=[{"role": "user"}])
    assert err.body["param"] == "messages[0].content"  # type: ignore[index]
    err = refused(chat, model="any", messages=user, temperature=3)
    assert "temperature" in str(err)
    err = refused(chat, model="any", messages=user, extra_body={"strategy": "no-such"})
    assert err.body["param"] == "strategy" and "unknown prompt strategy" in str(err)  # type: ignore[index]
    long = [{"role": "user", "content": "word " * 3000}]
    err = refused(chat, model="any", messages=long, extra_body={"rag": False})
    assert err.body["code"] == "context_length_exceeded" and err.body["param"] == "messages"  # type: ignore[index]
    err = refused(chat, model="any", messages=long)  # the question itself: too long for RAG
    assert err.body["param"] == "messages[0].content"  # type: ignore[index]

    err = refused(embed, model="any", input=[[1, 2, 3]])
    assert "token arrays" in str(err) and err.body["param"].startswith("input")  # type: ignore[index]
    err = refused(embed, model="any", input="")
    assert "input" in str(err)
    err = refused(embed, model="any", input="x", dimensions=1000)
    assert err.body["param"] == "dimensions" and "384" in str(err)  # type: ignore[index]


def test_the_rest_of_the_api_keeps_its_own_error_shape(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {keys['query']}"}
    resp = httpx.post(f"{server.url}/v1/ask", json={}, headers=headers)
    assert resp.status_code == 400 and "detail" in resp.json() and "error" not in resp.json()
    resp = httpx.get(f"{server.url}/v1/documents")
    assert resp.status_code == 401 and "detail" in resp.json()
