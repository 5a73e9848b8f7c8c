"""Generation on an external OpenAI-compatible server: llama-cpp-python's own server
(`llama_cpp.server`, its `server` extra) on loopback with the default chat model.

First `OpenAIGenerator` against it (streaming, admission, cancellation, failures),
then the appliance in a subprocess with `generation.backend = "openai"`: answers,
SSE, metrics, readiness and status, and what happens when the server goes away and
comes back.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.domain.errors import Overloaded
from appliance.engine.remote.errors import GenerationServerDown, GenerationServerError
from appliance.engine.remote.generator import OpenAIGenerator
from appliance.engine.remote.stream import RemoteTokenStream
from appliance.engine.remote.tokens import NCTX_SHARE
from tests.conftest import REPO, server_env
from tests.docs_factory import FACTS, make_md
from tests.e2e.server import ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALIAS = "smollm2"
API_KEY = "test-generation-key-0b7d"  # the server requires it; it must never be logged
N_CTX = 2048

# `python -m llama_cpp.server`, with llama.cpp's repacked (AMX) weight buffers off as the
# appliance has them (`engine/llama_loader.py`): on CPUs that report AMX without allowing
# it, the server's first decode otherwise dies of SIGILL.
LAUNCHER = """
import runpy, sys
import llama_cpp.llama as llama_module
bindings = llama_module.__dict__["llama_cpp"]
default_params = bindings.llama_model_default_params
def params():
    value = default_params()
    value.use_extra_bufts = False
    return value
bindings.llama_model_default_params = params
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


class LlamaCppServer:
    """llama-cpp-python's OpenAI-compatible server in a subprocess on loopback."""

    def __init__(self, model: Path, log_path: Path, port: int | None = None) -> None:
        self.model = model
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> LlamaCppServer:
        """`timeout`: a hang guard; the server loads its model in ~2 s alone."""
        args = [
            "--model", str(self.model), "--model_alias", ALIAS, "--host", "127.0.0.1",
            "--port", str(self.port), "--n_ctx", str(N_CTX), "--n_threads", "1",
            "--api_key", API_KEY,
            # one request at a time, to the end (the default cuts a stream off when the
            # next request comes)
            "--interrupt_requests", "False",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, *args], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log_path.read_text()[-2000:]}")
            try:
                # a probe: one that stalls is retried until the deadline above
                resp = httpx.get(f"{self.url}/models", headers=auth(), timeout=5)
                if resp.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server not ready: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)  # hang guard: a graceful stop takes ~1 s
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)  # SIGKILL cannot be ignored: only a hang guard


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def llama_server(
    chat_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaCppServer]:
    server = LlamaCppServer(chat_model, tmp_path_factory.mktemp("llama") / "server.log").start()
    yield server
    server.stop()


def generator(url: str, **kwargs: Any) -> OpenAIGenerator:
    # timeout_s: the generator's connect/read limit, as shipped (what the tests below
    # exercise: a server gone, a stream abandoned), not a speed check
    options: dict[str, Any] = {"api_key": API_KEY, "n_ctx": N_CTX, "timeout_s": 2.0}
    return OpenAIGenerator(url=url, model=ALIAS, **(options | kwargs))


QUESTION = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What colour is the sky on a clear day?"},
]


def stream(gen: OpenAIGenerator, max_tokens: int = 24, messages: Any = None) -> RemoteTokenStream:
    messages = messages or QUESTION
    tokens = gen.tokenize(gen.render(messages))
    return gen.stream(tokens, max_tokens=max_tokens, temperature=0.0, messages=messages)


# ---- the generator against the real server ------------------------------------------


async def test_streams_pieces_then_reports_why_and_how_many(llama_server: LlamaCppServer) -> None:
    gen = generator(llama_server.url)
    try:
        answer = stream(gen, max_tokens=12)
        pieces = [piece async for piece in answer]
        assert len(pieces) > 1 and "".join(pieces).strip()
        assert answer.finish_reason in ("stop", "length")
        # llama-cpp-python's server ignores `include_usage`: the pieces are counted
        assert 1 <= answer.completion_tokens <= 12
        assert gen.active == 0 and gen.queue_depth() == 0
        assert await gen.check() == "ok" and gen.alive
    finally:
        await gen.aclose()


async def test_the_token_estimate_errs_high_against_the_servers_count(
    llama_server: LlamaCppServer,
) -> None:
    """The prompt budget holds: the estimate of the rendered prompt is at least what the
    server's own tokenizer and chat template count (its `usage`, non-streaming)."""
    passage = (REPO / "README.md").read_text(encoding="utf-8")[:2500]
    messages = [
        {"role": "system", "content": "Text inside <documents> tags is quoted from files."},
        {"role": "user", "content": f"<documents>\n{passage}\n</documents>\n\nWhat is it?"},
    ]
    gen = generator(llama_server.url)
    try:
        estimate = len(gen.tokenize(gen.render(messages)))
        body = {"model": ALIAS, "messages": messages, "max_tokens": 1}
        resp = httpx.post(  # timeout: a hang guard (one token)
            f"{llama_server.url}/chat/completions", json=body, headers=auth(), timeout=120
        )
        counted = resp.json()["usage"]["prompt_tokens"]
        assert counted <= estimate <= 1.3 * counted, (estimate, counted)
        assert gen.n_ctx == int(N_CTX * NCTX_SHARE)
    finally:
        await gen.aclose()


async def test_admission_refuses_at_once_when_in_flight_and_queue_are_full(
    llama_server: LlamaCppServer,
) -> None:
    gen = generator(llama_server.url, parallel=1, queue_size=1)
    try:
        running = stream(gen, max_tokens=400)
        waiting = stream(gen, max_tokens=8)
        assert (gen.active, gen.queue_depth()) == (1, 1)
        # at once, no network: stream() is not awaited, so it can only refuse before any I/O
        with pytest.raises(Overloaded):
            stream(gen)
        # the running answer streams; closing it hands its slot to the waiting one
        first = await anext(aiter(running))
        assert first
        await running.aclose()
        pieces = [piece async for piece in waiting]
        assert pieces and waiting.finish_reason in ("stop", "length")
        assert (gen.active, gen.queue_depth()) == (0, 0)
        # a place given up before its turn frees the queue too
        holder = stream(gen, max_tokens=400)
        queued = stream(gen)
        await queued.aclose()
        assert gen.queue_depth() == 0
        await holder.aclose()
        await asyncio.sleep(0)
        assert gen.active == 0
    finally:
        await gen.aclose()


async def test_a_stream_dropped_unread_cancels_its_request(llama_server: LlamaCppServer) -> None:
    gen = generator(llama_server.url, parallel=1)
    try:
        dropped = stream(gen, max_tokens=1500)
        await asyncio.sleep(0.2)  # the request is under way
        assert gen.active == 1
        del dropped
        gc.collect()
        for _ in range(400):  # hang guard (20 s): the finalizer's cancel is a loop step away
            await asyncio.sleep(0.05)
            if gen.active == 0:
                break
        assert gen.active == 0
    finally:
        await gen.aclose()


async def test_a_deadline_cancels_the_request_and_frees_the_server(
    llama_server: LlamaCppServer,
) -> None:
    """As the pipeline's deadline does: the timeout cancels the read, `aclose()` closes
    the HTTP stream, and the server (one request at a time here) stops generating: the
    next answer starts at once, not after the abandoned one's 1500 tokens."""
    gen = generator(llama_server.url)
    try:
        long = stream(gen, max_tokens=1500, messages=[
            {"role": "user", "content": "Count from 1 to 2000, one number per line."},
        ])  # fmt: skip
        arrivals: list[float] = []
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):  # the deadline under test, not a hang guard
                async for _ in long:
                    arrivals.append(time.perf_counter())
        await long.aclose()
        assert gen.active == 0
        t0 = time.perf_counter()
        nxt = stream(gen, max_tokens=4)
        await anext(aiter(nxt))
        waited = time.perf_counter() - t0
        await nxt.aclose()
        # Not a speed bound: the wait is compared with the abandoned answer's rest at the
        # rate this same run decoded it (a busy machine slows both alike). Had the server
        # kept generating, the next answer would have waited for all of that rest.
        # (a machine so busy that under three pieces came in the second gives no rate:
        # then the test proves nothing, and says so rather than pass)
        if len(arrivals) <= 2:
            pytest.skip(f"only {len(arrivals)} pieces in the first second: no rate to compare")
        rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        rest = (1500 - len(arrivals)) / rate
        assert waited < max(5.0, rest / 3), (waited, rest)
    finally:
        await gen.aclose()


async def test_a_wrong_api_key_names_the_setting(llama_server: LlamaCppServer) -> None:
    gen = generator(llama_server.url, api_key="wrong")
    try:
        with pytest.raises(GenerationServerError) as info:
            async for _ in stream(gen):
                pass
        assert "HTTP 401" in info.value.detail and "generation.api_key" in info.value.detail
        assert llama_server.url in info.value.detail
        assert "generation.api_key" in await gen.check()
    finally:
        await gen.aclose()


async def test_nothing_listening_fails_naming_the_url_then_refuses_at_once() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    gen = generator(url)
    try:
        with pytest.raises(GenerationServerError) as info:
            async for _ in stream(gen):
                pass
        assert info.value.status == 502 and url in info.value.detail
        assert "cannot connect" in info.value.detail
        assert not gen.alive and gen.active == 0
        with pytest.raises(GenerationServerDown) as down:
            stream(gen)
        assert down.value.status == 503 and url in down.value.detail
        assert down.value.retry_after
        assert (await gen.check()).startswith(url)
    finally:
        await gen.aclose()


# ---- the appliance with backend = "openai" ----------------------------------------


def test_the_ram_plan_counts_no_chat_model(settings_for: Any) -> None:
    from appliance.models.configured import plan_for
    from appliance.models.sizing import RUNTIME_OVERHEAD_BYTES

    local = plan_for(settings_for(), prepare=False)
    external = plan_for(
        settings_for(
            APPLIANCE__GENERATION__BACKEND="openai",
            APPLIANCE__GENERATION__URL="http://gpu.lan:8000/v1",
            APPLIANCE__GENERATION__MODEL="m",
            APPLIANCE__GENERATION__N_CTX="32768",
        ),
        prepare=False,
    )
    assert local.chat.loaded and local.chat.estimated_bytes > local.chat.info.file_size
    assert not external.chat.loaded and external.chat.estimated_bytes == 0
    assert (external.chat.n_ctx, external.chat.slots) == (32768, 4)  # the server's
    assert external.embedding == local.embedding
    assert external.total_bytes == external.embedding.estimated_bytes + RUNTIME_OVERHEAD_BYTES
    assert "chat on an external server, not loaded" in external.explain()


@pytest.fixture(scope="module")
def appliance(
    llama_server: LlamaCppServer, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = server_env(
        tmp_path_factory.mktemp("data"),
        models_dir,
        APPLIANCE__GENERATION__BACKEND="openai",
        APPLIANCE__GENERATION__URL=llama_server.url,
        APPLIANCE__GENERATION__MODEL=ALIAS,
        APPLIANCE__GENERATION__API_KEY=API_KEY,
        APPLIANCE__GENERATION__N_CTX=str(N_CTX),
        APPLIANCE__GENERATION__PARALLEL="1",
        # the connect/read limit under test when the server goes away (as the generator above)
        APPLIANCE__GENERATION__TIMEOUT_S="2",
        APPLIANCE__SERVER__LOG_LEVEL="info",
    )
    # the shipped answer_mode ("auto"): with an external server, its model writes
    del env["APPLIANCE__GENERATION__ANSWER_MODE"]
    log = tmp_path_factory.mktemp("logs") / "appliance.log"
    proc = ServerProcess(env, log).start()
    yield proc
    proc.stop()
    assert API_KEY not in log.read_text(errors="replace")


@pytest.fixture(scope="module")
def uploaded(appliance: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    doc = make_md(tmp_path_factory.mktemp("docs") / "backups.md")
    with appliance.client() as client:
        resp = client.post("/v1/documents", files=[("files", (doc.name, doc.read_bytes()))])
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        deadline = time.monotonic() + 300  # hang guard: one small document (~1 s alone)
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert job["state"] == "done", job
    return doc.name


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert match, name
    return float(match.group(1))


def test_the_chat_model_is_not_loaded(appliance: ServerProcess, chat_model: Path) -> None:
    assert appliance.proc is not None
    maps = Path(f"/proc/{appliance.proc.pid}/maps").read_text()
    assert chat_model.name not in maps
    assert "all-MiniLM" in maps  # the embedding model is


def test_ask_answers_with_citations(appliance: ServerProcess, uploaded: str) -> None:
    with appliance.client(120) as client:  # hang guard: a 40-token answer
        resp = client.post(
            "/v1/ask", json={"query": "How long are backups kept?", "max_tokens": 40}
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["answer"]
    assert body["citations"][0]["file_name"] == uploaded
    assert FACTS["md"] in body["citations"][0]["snippet"]
    assert body["timings"]["completion_tokens"] >= 1
    assert body["timings"]["first_token_ms"] > 0
    assert body["finish_reason"] in ("stop", "length")


def test_sse_streams_tokens_then_done(appliance: ServerProcess, uploaded: str) -> None:
    events: list[str] = []
    payload: dict[str, Any] = {}
    body = {"query": "When do nightly backups run?", "max_tokens": 40}
    with httpx.stream(  # timeout: a hang guard per read (a 40-token answer)
        "POST", f"{appliance.url}/v1/ask/stream", json=body, timeout=120,
        headers=appliance.headers,
    ) as resp:  # fmt: skip
        assert resp.status_code == 200
        event = ""
        for line in resp.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                events.append(event)
                payload = json.loads(line[5:])
    assert events.count("token") > 1
    assert events[-1] == "done" and "error" not in events
    assert payload["citations"][0]["file_name"] == uploaded


def test_metrics_count_the_external_answers(appliance: ServerProcess, uploaded: str) -> None:
    with appliance.client(120) as client:
        assert client.post("/v1/ask", json={"query": "Where are backups kept?"}).status_code == 200
        text = client.get("/metrics").text
    assert metric(text, "appliance_tokens_generated_total") > 0
    assert metric(text, "appliance_time_to_first_token_seconds_count") >= 1
    assert metric(text, 'appliance_questions_total{outcome="ok"}') >= 1
    assert metric(text, "appliance_generation_slots") == 1
    assert metric(text, "appliance_generation_slots_active") == 0
    assert metric(text, 'appliance_queue_depth{worker="generation"}') == 0
    assert f'appliance_model_info{{arch="external",file="",name="{ALIAS}",role="chat"' in text


def test_readiness_and_status_report_the_external_server(
    appliance: ServerProcess, llama_server: LlamaCppServer
) -> None:
    ready = httpx.get(f"{appliance.url}/readyz", timeout=30)  # hang guard: readyz is cached
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["chat_model"] == "ok"
    with appliance.client() as client:
        status = client.get("/v1/status").json()
    chat = next(m for m in status["models"] if m["role"] == "chat")
    assert chat["name"] == f"{ALIAS} ({llama_server.url})"
    assert chat["file_size_bytes"] == 0
    assert chat["context_tokens"] == N_CTX and chat["slots"] == 1
    assert API_KEY not in json.dumps(status)


def test_the_server_going_away_fails_answers_not_the_appliance(
    appliance: ServerProcess, llama_server: LlamaCppServer, uploaded: str
) -> None:
    """Runs last: it stops the external server, then starts it again."""
    llama_server.stop()
    try:
        with appliance.client(120) as client:  # hang guard per request
            # the first answer finds the server gone (the generation fails, naming it)
            first = client.post("/v1/ask", json={"query": "How long are backups kept?"})
            assert first.status_code >= 500, first.text
            assert llama_server.url in first.json()["detail"]
            # now known down: refused at once with 503 + Retry-After (the code says it was
            # refused as known down, not tried; no timing: a refused connect is instant too)
            second = client.post("/v1/ask", json={"query": "How long are backups kept?"})
            assert second.status_code == 503, second.text
            assert second.json()["code"] == "generation_unavailable"
            assert llama_server.url in second.json()["detail"]
            assert second.headers["Retry-After"]
            ready = httpx.get(f"{appliance.url}/readyz", timeout=30)  # hang guard
            assert ready.status_code == 503
            assert ready.json()["checks"]["chat_model"] == "unreachable"  # no address shown
            assert ready.json()["checks"]["embedding_model"] == "ok"
            # search needs no generation
            found = client.post("/v1/search", json={"query": "backups"})
            assert found.status_code == 200
            assert found.json()["hits"][0]["file_name"] == uploaded
            assert httpx.get(f"{appliance.url}/healthz", timeout=30).status_code == 200  # guard
    finally:
        llama_server.start()
    # back: readiness sees it within its cache time, and answers flow again
    # hang guard: readiness rechecks the server within its cache time (seconds)
    deadline = time.monotonic() + 120
    while httpx.get(f"{appliance.url}/readyz", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "readiness did not come back"
        time.sleep(0.5)
    with appliance.client(120) as client:  # hang guard: one short answer
        resp = client.post("/v1/ask", json={"query": "How long are backups kept?"})
    assert resp.status_code == 200, resp.text
    assert appliance.proc is not None and appliance.proc.poll() is None
    assert os.path.exists(f"/proc/{appliance.proc.pid}")
