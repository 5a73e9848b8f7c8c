"""SIGTERM with answers streaming: each stream gets a final event, the process exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import server_env
from tests.docs_factory import make_md
from tests.e2e.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# "sentences": a strategy without a sentence stop, so the answer runs on
LONG = {
    "query": "Write a very long essay about backups and the facilities.",
    "max_tokens": 500,
    "strategy": "sentences",
}


def test_sigterm_ends_every_stream_with_a_final_event_and_exits_0(
    models_dir: Path, tmp_path: Path
) -> None:
    env = server_env(
        # the grace under test: the answers outlast it, so each must end with its final event
        tmp_path / "data", models_dir, APPLIANCE__SERVER__SHUTDOWN_GRACE_S="1",
        APPLIANCE__GENERATION__REPETITION_STOP="false",  # long answers: still running at SIGTERM
    )  # fmt: skip
    server = ServerProcess(env, tmp_path / "server.log").start()
    try:
        with server.client() as client:
            files = [("files", ("backups.md", make_md(tmp_path / "backups.md").read_bytes()))]
            job = client.post("/v1/documents", files=files).json()["job_id"]
            deadline = time.monotonic() + 300  # hang guard: one small document (~1 s alone)
            while client.get(f"/v1/jobs/{job}").json()["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, "the ingest never finished"
                time.sleep(0.1)

        last_sse: list[dict[str, Any]] = [{}, {}, {}]
        started = [threading.Event() for _ in range(4)]
        ws_result: dict[str, Any] = {}
        signalled = threading.Event()

        def sse(i: int) -> None:
            # timeout: a hang guard per read (tokens come every few ms)
            with httpx.stream("POST", f"{server.url}/v1/ask/stream", json=LONG, timeout=120,
                              headers=server.headers) as resp:  # fmt: skip
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        last_sse[i] = json.loads(line[5:])
                        started[i].set()

        def ws() -> None:
            url = server.url.replace("http://", "ws://") + "/v1/ask/ws"
            with connect(url, additional_headers=server.headers) as sock:
                sock.send(json.dumps(LONG))
                try:
                    while True:
                        event = json.loads(sock.recv(timeout=120))  # hang guard, as above
                        ws_result["last"] = event
                        ws_result["before_sigterm"] = not signalled.is_set()
                        started[3].set()
                except ConnectionClosed as closed:
                    ws_result["code"] = closed.rcvd.code if closed.rcvd else None

        threads = [threading.Thread(target=sse, args=(i,)) for i in range(3)]
        threads.append(threading.Thread(target=ws))
        for t in threads:
            t.start()
        # hang guard: four first tokens come within a second or two alone
        assert all(e.wait(180) for e in started), "every stream produced a first token"
        assert server.proc is not None
        signalled.set()
        server.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(120)  # hang guard: the streams end within the 1 s grace
        code = server.proc.wait(120)  # hang guard: the server exits after the 1 s grace
    finally:
        server.stop()
    for last in last_sse:
        assert last["type"] == "error" and last["code"] == "shutting_down", last
        assert last["status"] == 503
    # the model may end the WebSocket's answer (EOS) before the signal: the idle socket is
    # then closed with 1001; an answer still running gets the final event first
    last = ws_result["last"]
    if not (last["type"] == "done" and ws_result["before_sigterm"]):
        assert last.get("code") == "shutting_down", ws_result
    assert ws_result["code"] == 1001
    assert code == 0, (tmp_path / "server.log").read_text()[-2000:]
