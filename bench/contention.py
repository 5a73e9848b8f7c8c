"""The same work on an idle machine and beside a CPU hog on every core (issue 20, item 4).

The hog: one plain busy loop per CPU this process may run on (os.sched_getaffinity), each
its own process at the bench's nice (0 under `make bench`), started once the server is up
and killed when the side ends, as a backup or a scan would load a client's server. Each
side gets a fresh server on a fresh data dir with the shipped settings (no per-key rate
limit: one client sends every request) and does, in order:
- ingest: generated documents (8 topics, one chunk per section) uploaded at once; chunks
  embedded per second from the upload's answer until /v1/jobs shows every file ended;
- search p50: one client, back to back, for a fixed time (/v1/search, top_k 5);
- 8 streams: the same 8 questions at once through /v1/ask/stream; aggregate tokens/s;
- /healthz p99 under 16 streams: probed from a separate process while 16 answers stream;
- errors: every non-2xx answer, stream ending in an error event (504 at the deadline) or
  without its done event, request that failed, probe that failed, file not ingested.
Then the restart case, idle and beside the hog: bench/restart.py's fresh server vs a
server SIGKILLed while embedding and restarted, on the same texts (resumed chunks/s).

Prints a markdown section (make bench puts it in bench/RESULTS.md) with the ratios hog/idle
against issue 20's targets. `--smoke` (or the BENCH_CONTENTION_* variables, see `--help`)
makes a run of a minute or two that proves the instrument works, not the appliance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    LoadResult,
    RequestStats,
    Server,
    StreamResult,
    appliance_server,
    request_load,
)
from bench.restart import Ingest, fresh, handbook, ingest_until_done, resumed, upload  # noqa: E402
from bench.serve_load import MODELS, QUESTIONS, log  # noqa: E402

# A busy loop that ends by itself if the bench dies without killing it (its parent changes).
HOG = "import os\np = os.getppid()\nwhile os.getppid() == p:\n    for _ in range(10**7):\n        pass\n"
HOG_START_S = 1.0  # the loops spin before the measured work starts
PROBE_EVERY_S = 0.05  # as bench/probe.py: 20 probes a second
PROBE_TIMEOUT_S = 30.0  # a /healthz slower than this counts as an error, not a latency
STREAM_TIMEOUT_S = 900.0  # beyond generation.deadline_s (300): the server's 504 comes first
TOPICS = [  # one per serve_load question, so its prompts carry matching excerpts
    ("Warehouse safety audit", ["pallet racks", "forklift keys", "fire exits", "spill kits"]),
    ("Backup retention schedule", ["nightly copies", "monthly archives", "restore tests", "offsite tapes"]),
    ("Firewall and router maintenance", ["rule reviews", "firmware updates", "port scans", "config backups"]),
    ("Vendor license renewals", ["renewal dates", "seat counts", "invoices", "contract terms"]),
    ("Payroll audit and compliance", ["pay slips", "overtime records", "tax forms", "approvals"]),
    ("Office badge and visitor procedure", ["visitor badges", "the front desk", "escorts", "the sign-in book"]),
    ("Storage volume snapshot policy", ["hourly snapshots", "volume quotas", "snapshot pruning", "replicas"]),
    ("Canteen and holiday schedule", ["lunch hours", "holiday rotas", "menus", "closing days"]),
]  # fmt: skip
ROLES = ["office manager", "facilities lead", "IT administrator", "finance officer", "team lead"]


# ------------------------------------------------------------------ sizes
@dataclass(frozen=True)
class Sizes:
    sections: int  # sections (about one chunk each) per topic document, 8 documents
    tokens: int  # max_tokens of every answer
    search_seconds: float
    restart_parts: int  # parts per restart handbook, 3 handbooks

    @property
    def shipped(self) -> bool:
        return self == FULL

    def describe(self) -> str:
        restart = f"3 handbooks of {self.restart_parts} parts" if self.restart_parts else "none"
        return (f"{len(TOPICS)} documents of {self.sections} sections, {self.tokens} tokens per "
                f"answer, {self.search_seconds:.0f} s of searches, restart case: {restart}")  # fmt: skip


FULL = Sizes(sections=64, tokens=128, search_seconds=8.0, restart_parts=150)
SMOKE = Sizes(sections=3, tokens=16, search_seconds=2.0, restart_parts=8)


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        description="The same work idle and beside a CPU hog (issue 20).",
        epilog="Each size also reads BENCH_CONTENTION_<NAME> (SECTIONS, TOKENS, SEARCH_SECONDS, "
        "RESTART_PARTS); BENCH_CONTENTION_SMOKE=1 is --smoke.",
    )
    p.add_argument("--smoke", action="store_true", help="small sizes: a run of 1-2 minutes")
    p.add_argument("--sections", type=int, default=env("BENCH_CONTENTION_SECTIONS"),
                   help=f"sections per topic document (8 documents; {FULL.sections})")  # fmt: skip
    p.add_argument("--tokens", type=int, default=env("BENCH_CONTENTION_TOKENS"),
                   help=f"max_tokens per answer ({FULL.tokens})")  # fmt: skip
    p.add_argument("--search-seconds", type=float, default=env("BENCH_CONTENTION_SEARCH_SECONDS"),
                   help=f"seconds of back-to-back searches ({FULL.search_seconds:.0f})")  # fmt: skip
    p.add_argument("--restart-parts", type=int, default=env("BENCH_CONTENTION_RESTART_PARTS"),
                   help=f"parts per restart handbook, 3 handbooks; 0 skips the case ({FULL.restart_parts})")  # fmt: skip
    p.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)  # the probe process
    return p.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = SMOKE if args.smoke or os.environ.get("BENCH_CONTENTION_SMOKE") else FULL
    return Sizes(
        sections=int(args.sections) if args.sections is not None else base.sections,
        tokens=int(args.tokens) if args.tokens is not None else base.tokens,
        search_seconds=float(args.search_seconds)
        if args.search_seconds is not None
        else base.search_seconds,
        restart_parts=int(args.restart_parts)
        if args.restart_parts is not None
        else base.restart_parts,
    )


# ------------------------------------------------------------------ documents
def topic_document(n: int, title: str, things: list[str], sections: int) -> tuple[str, bytes]:
    """A handbook on one topic; each section ~150 words, under a 200-token chunk."""
    rng = Random(n)
    code = f"{title.split()[0][:3].upper()}{n:03d}"
    parts = [f"# {title}\n\nThis is the {title.lower()} handbook, reference {code}.\n"]
    for i in range(sections):
        sentences = []
        for _ in range(8):
            thing, role = rng.choice(things), rng.choice(ROLES)
            days, room = rng.randint(2, 60), rng.randint(100, 999)
            sentences.append(rng.choice([
                f"The {role} checks {thing} every {days} days and writes the result in register {code}-{i}.",
                f"When {thing} fail a check, the {role} reports it within {days} hours to room {room}.",
                f"Records of {thing} are kept for {days} months and reviewed by the {role} each quarter.",
                f"Nobody changes {thing} without a ticket approved by the {role} and a second reader.",
                f"The {title.lower()} names the {role} as owner of {thing} for site {room}.",
            ]))  # fmt: skip
        parts.append(f"\n## {title}: section {i + 1}\n\n" + " ".join(sentences) + "\n")
    return f"{title.lower().replace(' ', '-')}.md", "".join(parts).encode()


def topic_documents(sections: int) -> list[tuple[str, bytes]]:
    return [topic_document(n, t, things, sections) for n, (t, things) in enumerate(TOPICS)]


def search_bodies() -> list[dict[str, object]]:
    asks = [f"{title}: who checks {thing}?" for title, things in TOPICS for thing in things]
    return [{"query": q, "top_k": 5} for q in asks]


def ask_bodies(n: int, tokens: int) -> list[dict[str, object]]:
    return [{"query": QUESTIONS[i % len(QUESTIONS)], "max_tokens": tokens, "temperature": 0}
            for i in range(n)]  # fmt: skip


# ------------------------------------------------------------------ the hog
@contextlib.contextmanager
def cpu_hog() -> Iterator[list[int]]:
    """One nice-0 (the bench's nice) busy-loop process per CPU of this process's affinity;
    always killed on the way out. Yields their pids."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in sorted(os.sched_getaffinity(0)):
            procs.append(subprocess.Popen([sys.executable, "-c", HOG]))
        time.sleep(HOG_START_S)
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def hog_or_not(hog: bool) -> contextlib.AbstractContextManager[list[int]]:
    return cpu_hog() if hog else contextlib.nullcontext([])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) so far of a process, its threads, its children that ended
    and those still running (the parse child); 0 once it is gone."""
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
    except psutil.Error:
        return 0.0
    return float(total)


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent on anything but idling, so far."""
    t = psutil.cpu_times()  # Linux: guest time is inside user and nice; steal is not ours
    return float(t.user + t.nice + t.system + t.irq + t.softirq)


# ------------------------------------------------------------------ answers
@dataclass
class Answer(StreamResult):
    completion_tokens: int = 0  # the server's count (its done event); token events may differ


def generated(load: LoadResult) -> int:
    """Tokens of the answers that ended well, by the server's count (token events if none)."""
    return sum(getattr(r, "completion_tokens", 0) or r.tokens for r in load.ok)


def tokens_per_s(load: LoadResult) -> float:
    return generated(load) / load.wall if load.wall else 0.0


async def answer(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> Answer:
    """One streamed answer. Its status is the HTTP status, or the error event's status
    (504 at the deadline), or 0 when the request failed or the stream ended without its
    done event: anything but 200 is an error."""
    t0 = time.perf_counter()
    result = Answer(status=0)
    done = False
    try:
        async with client.stream("POST", url, json=body) as resp:
            result.status = resp.status_code
            if resp.status_code != 200:
                await resp.aread()
                return result
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event["type"] == "token":
                    now = time.perf_counter() - t0
                    result.ttft = result.ttft or now
                    result.last = now
                    result.tokens += 1
                elif event["type"] == "error":
                    result.status = int(event.get("status") or 500)
                    log(f"  stream error {result.status}: {event.get('message')}")
                    return result
                elif event["type"] == "done":
                    done = True
                    timings = event.get("timings") or {}
                    result.completion_tokens = int(timings.get("completion_tokens") or 0)
        if not done:
            result.status = 0
    except httpx.HTTPError as exc:
        log(f"  stream failed: {exc!r}")
        result.status = 0
    finally:
        result.total = time.perf_counter() - t0
    return result


async def streams(server: Server, n: int, tokens: int) -> LoadResult:
    url = f"{server.url}/v1/ask/stream"
    limits = httpx.Limits(max_connections=n + 4)
    async with httpx.AsyncClient(timeout=STREAM_TIMEOUT_S, limits=limits,
                                 headers=server.headers) as client:  # fmt: skip
        t0 = time.perf_counter()
        results = await asyncio.gather(*(answer(client, url, b) for b in ask_bodies(n, tokens)))
        return LoadResult(list(results), time.perf_counter() - t0)


def failed(load: LoadResult) -> int:
    return sum(1 for r in load.results if r.status != 200)


# ------------------------------------------------------------------ probe
def probe(url: str) -> None:
    """The probe process: GET `url` every PROBE_EVERY_S until SIGTERM, then print
    {"latencies": [s...], "errors": n} as one JSON line."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    latencies: list[float] = []
    errors = 0
    with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
        client.get(url)  # open the connection before timing
        print("ready", flush=True)
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                ok = client.get(url).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1
            stop.wait(PROBE_EVERY_S)
    print(json.dumps({"latencies": latencies, "errors": errors}), flush=True)


@contextlib.contextmanager
def probing(url: str) -> Iterator[dict[str, Any]]:
    """Probe `url` from its own process for the block's time; fills the yielded dict."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.contention", "--probe", url],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip
    found: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the probe did not start (exit {proc.wait()})")
        yield found
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=PROBE_TIMEOUT_S + 30)
        found.update(json.loads(out.strip().splitlines()[-1]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ one side
@dataclass
class Side:
    hogs: int = 0
    ingest: Ingest | None = None
    search: RequestStats | None = None
    eight: LoadResult | None = None
    sixteen: LoadResult | None = None
    healthz: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    server_cores: float = 0.0  # CPU seconds of the server / wall seconds while measuring
    hog_cores: float = 0.0
    other_cores: float = 0.0  # the rest of the machine: this bench's client, the probe, others
    restart: tuple[Ingest, Ingest] | None = None  # fresh, resumed

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


def measure(server: Server, sizes: Sizes, side: Side) -> None:
    docs = topic_documents(sizes.sections)
    log(f"  ingest: {len(docs)} documents")
    upload(server, docs)
    side.ingest = ingest_until_done(server)
    side.errors["files not ingested"] = side.ingest.not_done
    ingest = side.ingest
    log(f"  {ingest.chunks} chunks in {ingest.seconds:.1f} s: {ingest.rate:.1f} chunks/s")
    warm = asyncio.run(streams(server, 1, 8))  # the first answer's one-time costs, unmeasured
    side.errors["warm-up answer"] = failed(warm)
    side.search = asyncio.run(request_load(f"{server.url}/v1/search", search_bodies(), 1,
                                           sizes.search_seconds, server.headers))  # fmt: skip
    side.errors["search non-200"] = side.search.errors
    log(f"  search: {len(side.search.latencies)} requests, p50 {side.search.pct(50):.1f} ms")
    side.eight = asyncio.run(streams(server, 8, sizes.tokens))
    side.errors["8 streams failed"] = failed(side.eight)
    log(f"  8 streams: {tokens_per_s(side.eight):.1f} tok/s, {failed(side.eight)} failed")
    with probing(f"{server.url}/healthz") as probed:
        side.sixteen = asyncio.run(streams(server, 16, sizes.tokens))
    side.healthz = probed["latencies"]
    side.errors["16 streams failed"] = failed(side.sixteen)
    side.errors["/healthz failed"] = int(probed["errors"])
    log(f"  16 streams: {tokens_per_s(side.sixteen):.1f} tok/s; /healthz p99 "
        f"{pct(side.healthz, 99):.1f} ms over {len(side.healthz)} probes")  # fmt: skip


def run_side(work: Path, sizes: Sizes, hog: bool) -> Side:
    name = "hog" if hog else "idle"
    log(f"{name}:")
    side = Side()
    with appliance_server(work / name, MODELS, work / f"{name}.log") as server:
        assert server.proc is not None
        with hog_or_not(hog) as hog_pids:
            side.hogs = len(hog_pids)
            t0, server0 = time.monotonic(), cpu_seconds(server.proc.pid)
            hog0, busy0 = sum(cpu_seconds(p) for p in hog_pids), machine_busy_seconds()
            measure(server, sizes, side)
            wall = time.monotonic() - t0
            side.server_cores = (cpu_seconds(server.proc.pid) - server0) / wall
            side.hog_cores = (sum(cpu_seconds(p) for p in hog_pids) - hog0) / wall
            busy = (machine_busy_seconds() - busy0) / wall
            side.other_cores = max(0.0, busy - side.server_cores - side.hog_cores)
    if sizes.restart_parts:
        docs = [handbook(n, sizes.restart_parts) for n in range(3)]
        kill_after = min(32, max(1, sizes.restart_parts // 4))
        log(f"  restart case, {len(docs)} handbooks of {sizes.restart_parts} parts:")
        (work / f"{name}-restart").mkdir()
        with hog_or_not(hog):
            first = fresh(work / f"{name}-restart", docs)
            again = resumed(work / f"{name}-restart", docs, kill_after)
        side.restart = (first, again)
        side.errors["restart files not ingested"] = first.not_done + again.not_done
        log(f"  fresh {first.rate:.1f} chunks/s, resumed {again.rate:.1f} chunks/s")
    return side


# ------------------------------------------------------------------ report
def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e3) if values else float("nan")


def ratio(hog: float, idle: float) -> float:
    return hog / idle if idle else float("nan")


def verdict(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def render(idle: Side, hog: Side, sizes: Sizes, seconds: float) -> str:
    assert idle.ingest and hog.ingest and idle.search and hog.search
    assert idle.eight and hog.eight and idle.sixteen and hog.sixteen
    r_ingest = ratio(hog.ingest.rate, idle.ingest.rate)
    r_tps = ratio(tokens_per_s(hog.eight), tokens_per_s(idle.eight))
    r_search = ratio(hog.search.pct(50), idle.search.pct(50))
    h_idle, h_hog = pct(idle.healthz, 99), pct(hog.healthz, 99)
    r_health = ratio(h_hog, h_idle)
    errors = idle.error_total + hog.error_total
    lines = [
        f"Same work on one machine, idle and beside {hog.hogs} nice-{os.getpriority(os.PRIO_PROCESS, 0)} "
        "busy loops (one process per CPU, started once the server is up), both sides from this "
        "run, each on a fresh server with the shipped settings.",
    ]  # fmt: skip
    if not sizes.shipped:
        lines.append(f"\n**Not the full run** ({sizes.describe()}): these figures prove the "
                     "bench works, not the appliance.")  # fmt: skip
    lines += [
        "",
        "| measure | idle | beside the hog | hog / idle | target | |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| ingest, chunks/s ({idle.ingest.chunks} chunks, {len(TOPICS)} documents) | "
        f"{idle.ingest.rate:.1f} | {hog.ingest.rate:.1f} | {r_ingest:.2f}x | ≥ 0.40x | {verdict(r_ingest >= 0.4)} |",
        f"| 8 streams, aggregate tok/s ({sizes.tokens} max tokens each) | {tokens_per_s(idle.eight):.1f} | "
        f"{tokens_per_s(hog.eight):.1f} | {r_tps:.2f}x | ≥ 0.40x | {verdict(r_tps >= 0.4)} |",
        f"| search p50, ms (1 client, back to back) | {idle.search.pct(50):.1f} | "
        f"{hog.search.pct(50):.1f} | {r_search:.2f}x | | |",
        f"| /healthz p99 under 16 streams, ms (separate probe process) | {h_idle:.1f} | "
        f"{h_hog:.1f} | {r_health:.2f}x | ≤ 3x | {verdict(r_health <= 3)} |",
        f"| errors | {idle.error_total} | {hog.error_total} | | 0 | {verdict(errors == 0)} |",
    ]  # fmt: skip
    if idle.restart and hog.restart:
        cells = []
        oks = []
        for side in (idle, hog):
            assert side.restart is not None
            first, again = side.restart
            r = ratio(again.rate, first.rate)
            oks.append(r >= 0.8)
            cells.append(f"{r:.2f}x ({again.rate:.1f} / {first.rate:.1f})")
        lines.append(f"| restart: resumed / fresh chunks/s after a SIGKILL | {cells[0]} | {cells[1]} "
                     f"| | ≥ 0.8x both | {verdict(all(oks))} |")  # fmt: skip
    lines += [
        "",
        "Details (idle / beside the hog):",
        "",
        f"- answers: 8 streams {generated(idle.eight)} / {generated(hog.eight)} "
        f"tokens in {idle.eight.wall:.1f} / {hog.eight.wall:.1f} s, first token p50 "
        f"{idle.eight.ttft(50) * 1e3:.0f} / {hog.eight.ttft(50) * 1e3:.0f} ms; 16 streams "
        f"{tokens_per_s(idle.sixteen):.1f} / {tokens_per_s(hog.sixteen):.1f} tok/s",
        f"- search: {len(idle.search.latencies)} / {len(hog.search.latencies)} requests in "
        f"{sizes.search_seconds:.0f} s, p99 {idle.search.pct(99):.1f} / {hog.search.pct(99):.1f} ms",
        f"- /healthz: {len(idle.healthz)} / {len(hog.healthz)} probes, p50 {pct(idle.healthz, 50):.1f} / "
        f"{pct(hog.healthz, 50):.1f} ms",
        f"- CPU while measuring (cores): server and its children {idle.server_cores:.2f} / {hog.server_cores:.2f}, "
        f"hog - / {hog.hog_cores:.2f}, everything else (this bench's client and probe, other "
        f"users) {idle.other_cores:.2f} / {hog.other_cores:.2f}, of {psutil.cpu_count()} "
        f"({len(os.sched_getaffinity(0))} in this process's affinity)",
    ]  # fmt: skip
    for name, side in (("idle", idle), ("beside the hog", hog)):
        if side.error_total:
            what = ", ".join(f"{k} {v}" for k, v in side.errors.items() if v)
            lines.append(f"- errors {name}: {what}")
    if idle.restart and hog.restart:
        lines.append(f"- restart: 3 handbooks, {idle.restart[0].chunks} chunks fresh, "
                     f"{idle.restart[1].chunks} / {hog.restart[1].chunks} resumed after the kill")  # fmt: skip
    lines += ["", f"(contention.py: {seconds:.0f} s)"]
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.probe:
        probe(args.probe)
        return
    sizes = sizes_from(args)

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # run the finally blocks: the hog and servers stop

    signal.signal(signal.SIGTERM, stop)
    from appliance.models.locate import prepare_default_chat, prepare_default_embedding

    prepare_default_chat(MODELS)
    prepare_default_embedding(MODELS)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="contention-") as tmp:
        idle = run_side(Path(tmp), sizes, hog=False)
        hog = run_side(Path(tmp), sizes, hog=True)
    print(render(idle, hog, sizes, time.monotonic() - t0))


if __name__ == "__main__":
    main()
