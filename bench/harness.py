"""Processes and load generators for the serving benchmark (bench/serve_load.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server subprocess on loopback; tracks its peak RSS while it runs."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int,
                 ready_path: str, log: Path, key_file: Path | None = None) -> None:  # fmt: skip
        self.name = name
        self.argv = argv
        self.env = {**os.environ, **env}
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.key_file = key_file
        self.key: str | None = None  # the appliance's admin key, once it is up
        self.headers: dict[str, str] = {}
        self.peak_rss = 0
        self._stop_sampling = threading.Event()

    def __enter__(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{tail}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    if self.key_file is not None:
                        self.key = self.key_file.read_text().strip()
                        self.headers = {"Authorization": f"Bearer {self.key}"}
                    threading.Thread(target=self._sample, daemon=True).start()
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready; see {self.log}")

    def _sample(self) -> None:
        assert self.proc is not None
        ps = psutil.Process(self.proc.pid)
        while not self._stop_sampling.wait(0.1):
            try:
                self.peak_rss = max(self.peak_rss, ps.memory_info().rss)
            except psutil.Error:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop_sampling.set()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def appliance_server(data_dir: Path, models_dir: Path, log: Path, **settings: str) -> Server:
    port = free_port()
    env = {
        "APPLIANCE__STORAGE__DATA_DIR": str(data_dir),
        "APPLIANCE__MODELS__MODELS_DIR": str(models_dir),
        "APPLIANCE__SERVER__HOST": "127.0.0.1",
        "APPLIANCE__SERVER__PORT": str(port),
        "APPLIANCE__SERVER__LOG_LEVEL": "warning",
        # one bench client sends hundreds of requests a second: no per-key limit
        "APPLIANCE__SECURITY__RATE_LIMIT_PER_MINUTE": "0",
        # the benchmarks measure the model's answers (the shipped "auto" extracts with the
        # 135M model): a question naming no strategy is generated, "extract" is asked by name
        "APPLIANCE__GENERATION__ANSWER_MODE": "generate",
    }
    env.update({f"APPLIANCE__{k.upper()}": v for k, v in settings.items()})
    return Server("appliance", [sys.executable, "-m", "appliance", "serve"], env, port,
                  "/readyz", log, data_dir / "secrets" / "admin.key")  # fmt: skip


@dataclass
class StreamResult:
    status: int
    ttft: float = 0.0
    tokens: int = 0
    total: float = 0.0
    last: float = 0.0  # time of the last token
    completion_tokens: int = 0  # the server's count (done event of /v1/ask/stream), else 0
    first_event: float = 0.0  # time of the first event (/v1/ask/stream: the evidence)
    finish: str = ""  # the done event's finish_reason (/v1/ask/stream)


@dataclass
class LoadResult:
    results: list[StreamResult] = field(default_factory=list)
    wall: float = 0.0

    @property
    def ok(self) -> list[StreamResult]:
        return [r for r in self.results if r.status == 200 and r.tokens > 0]

    def tokens_per_s(self) -> float:
        return sum(r.tokens for r in self.ok) / self.wall if self.wall else 0.0

    def generated(self) -> int:
        """Tokens generated, by the server's count where it gave one (else token events)."""
        return sum(r.completion_tokens or r.tokens for r in self.ok)

    def ttft(self, q: float) -> float:
        values = [r.ttft for r in self.ok]
        return float(np.percentile(values, q)) if values else float("nan")

    def decode_rate(self) -> float:
        """Median per-stream tokens/s between its first and last token."""
        rates = [
            (r.tokens - 1) / (r.last - r.ttft) for r in self.ok if r.tokens > 1 and r.last > r.ttft
        ]
        return float(np.median(rates)) if rates else float("nan")

    def count(self, status: int) -> int:
        return sum(1 for r in self.results if r.status == status)


async def sse_stream(client: httpx.AsyncClient, url: str, body: dict[str, object],
                     openai: bool | str = False) -> StreamResult:  # fmt: skip
    """One streamed answer: time to first token, tokens (content events), total time."""
    t0 = time.perf_counter()
    result = StreamResult(status=0)
    async with client.stream("POST", url, json=body) as resp:
        result.status = resp.status_code
        if resp.status_code != 200:
            await resp.aread()
            result.total = time.perf_counter() - t0
            return result
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if openai == "completion":  # llama-server's native /completion stream
                event = json.loads(data)
                is_token = bool(event.get("content"))
                if event.get("stop"):
                    if is_token:
                        result.tokens += 1
                    break
            elif openai:
                if data == "[DONE]":
                    break
                delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                is_token = bool(delta)
            else:
                event = json.loads(data)
                is_token = event["type"] == "token"
                if not result.first_event:
                    result.first_event = time.perf_counter() - t0
                if event["type"] == "done":
                    result.completion_tokens = int(event["timings"]["completion_tokens"])
                    result.finish = str(event["finish_reason"])
            if is_token:
                now = time.perf_counter() - t0
                if result.tokens == 0:
                    result.ttft = now
                result.last = now
                result.tokens += 1
    result.total = time.perf_counter() - t0
    return result


async def concurrent_streams(url: str, bodies: list[dict[str, object]],
                             openai: bool | str = False,
                             headers: dict[str, str] | None = None) -> LoadResult:  # fmt: skip
    limits = httpx.Limits(max_connections=len(bodies) + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits, headers=headers) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(sse_stream(client, url, b, openai) for b in bodies))
        return LoadResult(list(results), time.perf_counter() - t0)


async def one_at_a_time(url: str, bodies: list[dict[str, object]],
                        headers: dict[str, str] | None = None) -> LoadResult:  # fmt: skip
    """The same streams as `concurrent_streams`, each sent when the one before has ended."""
    async with httpx.AsyncClient(timeout=600, headers=headers) as client:
        t0 = time.perf_counter()
        results = [await sse_stream(client, url, b) for b in bodies]
        return LoadResult(results, time.perf_counter() - t0)


def metric_totals(url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Every sample of the server's /metrics by its line's name and labels, e.g.
    `appliance_stage_seconds_sum{stage="generate"}`: diff two readings for one phase."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", headers=headers, timeout=30).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


@dataclass
class RequestStats:
    latencies: list[float]
    wall: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else float("nan")


async def request_load(url: str, bodies: list[dict[str, object]], clients: int,
                       duration: float,
                       headers: dict[str, str] | None = None) -> RequestStats:  # fmt: skip
    """`clients` workers send POSTs back to back for `duration` seconds."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration

    async def worker(i: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        n = i
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = await client.post(url, json=bodies[n % len(bodies)])
            n += clients
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i, client) for i in range(clients)))
        return RequestStats(latencies, time.perf_counter() - t0, errors)
