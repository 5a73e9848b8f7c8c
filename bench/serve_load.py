"""Serving benchmark: the real server under load over HTTP, from this separate process.

Measured in one run, on this machine, with ratios against baselines from the same run:
- batching as shipped: the answer benchmark's questions over its 50 PostgreSQL pages
  (ingested over HTTP), asked one at a time and then 8 and 16 together on the same
  server with the shipped settings: aggregate tok/s both ways, the ratio, per-stream
  time to first token (issue 20);
- aggregate tokens/s and p50/p99 time to first token at 1, 4, 8, 16 concurrent streams:
  appliance (continuous batching) vs one-at-a-time serving (the same server with one
  slot, the usual llama-cpp-python way) vs llama.cpp's own `llama-server --parallel N`
  (built from the sources vendored in the llama-cpp-python sdist; skipped if it cannot be);
- single-stream tokens/s vs raw llama-cpp-python in process;
- search req/s and p50/p99 at 1, 10, 50 clients over a 20k-chunk index vs the seed's
  stack (FastAPI + pydantic + llama-cpp-python + qdrant-client local, bench/reference);
- /healthz p99 under full load vs idle; p99 time to first token at 50 askers and 503s;
- peak RSS of the server.
Writes bench/RESULTS.md. Run: `make bench`.

    python bench/serve_load.py --section generation            # batching as shipped only
    python bench/serve_load.py --section generation --rounds 3 \
        --variant nice10:models__thread_nice=10 --variant nice0:models__thread_nice=0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    LoadResult,
    Server,
    appliance_server,
    concurrent_streams,
    free_port,
    metric_totals,
    one_at_a_time,
    request_load,
)  # fmt: skip
from bench.llama_server import build_llama_server  # noqa: E402
from bench.store_engines import CACHE, embeddings, texts  # noqa: E402

MODELS = REPO / ".cache" / "models"
N_INDEX = int(os.environ.get("BENCH_INDEX", "20000"))
LEVELS = [1, 4, 8, 16]
MAX_TOKENS = 128
CTX = 2048
# The prompt strategy of the engine-vs-llama-server section: whole passages, which this
# bench rebuilds for llama-server from the appliance's search hits (the default
# `sentences` strategy picks sentences with embeddings the bench cannot repeat). The
# batching section (bench/batching.py) runs the shipped default.
COMPARED = "top3"
THREADS = len(os.sched_getaffinity(0))
SEARCH_SECONDS = float(os.environ.get("BENCH_SEARCH_SECONDS", "8"))
QUESTIONS = [
    "Write a detailed report about the warehouse safety audit.",
    "Explain the backup retention schedule in detail.",
    "Describe the firewall and router maintenance policy.",
    "Summarize everything about vendor license renewals.",
    "Write a long note about the payroll audit and compliance.",
    "Describe the office badge and visitor procedure at length.",
    "Explain the storage volume snapshot policy in detail.",
    "Write a detailed guide to the canteen and holiday schedule.",
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ index
def build_index(n: int) -> tuple[Path, Path]:
    """A 20k-chunk index of real MiniLM embeddings: appliance data dir + reference store."""
    root = CACHE / f"index-{n}"
    done = root / ".done"
    if done.is_file():
        return root / "appliance", root / "reference"
    shutil.rmtree(root, ignore_errors=True)
    vectors, _ = embeddings(n)
    vectors = vectors[:n]
    corpus = texts(n, 1)
    log(f"building the {n}-chunk indexes (once per machine)")

    async def appliance_side() -> None:
        from appliance.domain.types import ChunkRecord
        from appliance.store.edge import EdgeStore
        from appliance.store.journal import DocumentRow, Journal

        store = EdgeStore(path=root / "appliance" / "edge" / "chunks", dim=384,
                          optimize_after_writes=False)  # fmt: skip
        store.start()
        catalog = Journal(root / "appliance" / "journal.sqlite3")
        catalog.start()
        for start in range(0, n, 100):
            doc = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{start}"))
            await store.upsert([
                ChunkRecord(point_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{i}")),
                            document_id=doc, file_name=f"doc{start // 100}.txt", chunk_index=i - start,
                            text=corpus[i], page=None, heading=None, vector=vectors[i].tolist())
                for i in range(start, min(n, start + 100))
            ])  # fmt: skip
            await catalog.add(DocumentRow(doc, f"doc{start // 100}.txt", doc, "text/plain", 0,
                                          min(100, n - start), None, time.time()))  # fmt: skip
        await store.optimize()
        await store.close()
        await catalog.close()

    asyncio.run(appliance_side())
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(root / "reference"))
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
    )
    for start in range(0, n, 256):
        client.upsert("c", points=[
            models.PointStruct(id=i + 1, vector=vectors[i].tolist(), payload={"text": corpus[i]})
            for i in range(start, min(n, start + 256))
        ])  # fmt: skip
    client.close()
    done.touch()
    return root / "appliance", root / "reference"


def copy_dir(src: Path, work: Path, name: str) -> Path:
    dst = work / name
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------- sections
def ask_bodies(n: int) -> list[dict[str, object]]:
    return [{"query": QUESTIONS[i % len(QUESTIONS)], "max_tokens": MAX_TOKENS, "temperature": 0}
            for i in range(n)]  # fmt: skip


def generation_levels(
    url: str,
    openai_bodies: list[dict[str, object]] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[int, Any]:
    out = {}
    for level in LEVELS:
        if openai_bodies is None:
            res = asyncio.run(
                concurrent_streams(f"{url}/v1/ask/stream", ask_bodies(level), headers=headers)
            )
        else:
            bodies = [openai_bodies[i % len(openai_bodies)] for i in range(level)]
            res = asyncio.run(concurrent_streams(f"{url}/v1/chat/completions", bodies, openai=True))
        out[level] = {"tps": res.tokens_per_s(), "ttft50": res.ttft(50), "ttft99": res.ttft(99),
                      "ok": len(res.ok), "decode_tps": res.decode_rate()}  # fmt: skip
        log(f"  {level:>2} streams: {out[level]['tps']:.1f} tok/s, ttft p50 {out[level]['ttft50']*1e3:.0f} ms "
            f"p99 {out[level]['ttft99']*1e3:.0f} ms")  # fmt: skip
    return out


def single_streams(url: str, headers: dict[str, str]) -> float:
    """Median decode rate of one stream at a time over every question (as the raw baseline)."""
    rates = []
    for body in ask_bodies(len(QUESTIONS)):
        res = asyncio.run(concurrent_streams(f"{url}/v1/ask/stream", [body], headers=headers))
        rates.append(res.decode_rate())
    log(f"  one stream at a time, median decode rate {np.median(rates):.1f} tok/s")
    return float(np.median(rates))


def llama_server_messages(url: str, headers: dict[str, str]) -> list[dict[str, object]]:
    """The same prompts the appliance builds (its search + its prompt builder)."""
    import httpx

    from appliance.config.schema import Settings
    from appliance.domain.types import Hit
    from appliance.query.prompt import Excerpt, messages_for

    bodies = []
    for q in QUESTIONS:
        hits = httpx.post(f"{url}/v1/search", json={"query": q, "top_k": 4},
                          headers=headers).json()["hits"]  # fmt: skip
        found = [Hit(**{k: h[k] for k in Hit.__struct_fields__ if k in h}) for h in hits]
        msgs = messages_for(Settings().prompts[COMPARED], q,
                            [Excerpt(n, h, h.text) for n, h in enumerate(found[:3], start=1)])  # fmt: skip
        # cache_prompt off: the appliance keeps no prompt cache across requests, so
        # llama-server must read every prompt too (its cache would skip repeats).
        bodies.append({"messages": msgs, "max_tokens": MAX_TOKENS, "temperature": 0,
                       "stream": True, "cache_prompt": False})  # fmt: skip
    return bodies


def raw_single_stream(chat: Path, messages: list[dict[str, object]]) -> float:
    code = f"""
import json, time
from appliance.engine.llama_loader import load_llama
llm = load_llama({str(chat)!r}, n_ctx={CTX}, n_batch=256, n_threads={THREADS})
out = []
for msgs in json.loads({json.dumps(json.dumps(messages))}):
    llm.reset()
    n = 0; first = None
    for part in llm.create_chat_completion(msgs, max_tokens={MAX_TOKENS}, temperature=0, stream=True):
        if part["choices"][0]["delta"].get("content"):
            n += 1; first = first or time.perf_counter()
    out.append((n - 1) / (time.perf_counter() - first))
import statistics; print(json.dumps(statistics.median(out)))
"""
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    return float(json.loads(res.stdout.strip().splitlines()[-1]))


def search_levels(url: str, headers: dict[str, str]) -> dict[int, Any]:
    bodies = [{"query": q, "top_k": 5} for q in texts(200, 3)]
    out = {}
    for clients in (1, 10, 50):
        st = asyncio.run(request_load(f"{url}/v1/search", bodies, clients, SEARCH_SECONDS, headers))
        out[clients] = {"rps": st.rps, "p50": st.pct(50), "p99": st.pct(99), "errors": st.errors}
        log(
            f"  {clients:>2} clients: {st.rps:.1f} req/s p50 {st.pct(50):.1f} ms p99 {st.pct(99):.1f} ms"
        )
    return out


def probe_process(url: str, seconds: float) -> subprocess.Popen[str]:
    """/healthz probed from its own process (bench/probe.py), apart from the load's event loop."""
    return subprocess.Popen([sys.executable, "-m", "bench.probe", url, str(seconds)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip


def probe_latencies(proc: subprocess.Popen[str]) -> list[float]:
    out, _ = proc.communicate(timeout=120)
    if proc.returncode:
        raise RuntimeError(f"bench.probe exited with {proc.returncode}")
    latencies: list[float] = json.loads(out)
    return latencies


async def healthz_under_load(url: str, headers: dict[str, str]) -> dict[str, float]:
    idle = probe_latencies(probe_process(f"{url}/healthz", 5.0))
    busy_probe = probe_process(f"{url}/healthz", 10.0)
    search_bodies = [{"query": q, "top_k": 5} for q in texts(50, 4)]
    await asyncio.gather(
        concurrent_streams(f"{url}/v1/ask/stream", ask_bodies(16), headers=headers),
        request_load(f"{url}/v1/search", search_bodies, 10, 10.0, headers),
    )
    busy = probe_latencies(busy_probe)
    return {"idle_p99": float(np.percentile(idle, 99) * 1e3),
            "busy_p99": float(np.percentile(busy, 99) * 1e3)}  # fmt: skip


# ------------------------------------- batching as shipped: one at a time vs together
TOGETHER = (8, 16)
ROUNDS = int(os.environ.get("BENCH_GEN_ROUNDS", "2"))
STAGE = 'appliance_stage_seconds_sum{{stage="{}"}}'
STEPS = "appliance_decode_batch_sequences_count"
STEP_SEQUENCES = "appliance_decode_batch_sequences_sum"


def pg_corpus() -> tuple[Path, list[str]]:
    """A data dir holding the answer benchmark's PostgreSQL pages, ingested over HTTP with
    the shipped settings once per machine (each run works on a copy), and its questions."""
    import httpx

    from bench.answers import ingest, load_questions

    spec = load_questions()
    files: list[str] = spec["files"]  # type: ignore[assignment]
    asked = cast(list[dict[str, str]], [*spec["questions"], *spec["exact_token_questions"]])  # type: ignore[misc]
    # Asked for an explanation, as users do: answers run to the shipped length (128
    # tokens) instead of the one-line facts the answer benchmark checks.
    questions = [f"{q['question']} Explain in detail." for q in asked]
    root = CACHE / f"pg-corpus-{len(files)}"
    if not (root / ".done").is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        log(f"ingesting the {len(files)} PostgreSQL pages over HTTP (once per machine)")
        with (
            appliance_server(root / "data", MODELS, root / "ingest.log") as srv,
            httpx.Client(base_url=srv.url, timeout=600, headers=srv.headers) as client,
        ):
            took = ingest(client, Path(str(spec["root"])), files)
        log(f"  ingested in {took:.0f} s")
        (root / ".done").touch()
    return root / "data", questions


def phase(url: str, headers: dict[str, str], bodies: list[dict[str, object]],
          together: bool) -> tuple[LoadResult, dict[str, float]]:  # fmt: skip
    """The streams of `bodies` at once or one after another, and what the server's
    /metrics counted meanwhile."""
    before = metric_totals(url, headers)
    ask = f"{url}/v1/ask/stream"
    res = asyncio.run(
        concurrent_streams(ask, bodies, headers=headers)
        if together
        else one_at_a_time(ask, bodies, headers=headers)
    )
    after = metric_totals(url, headers)
    return res, {k: after[k] - before.get(k, 0.0) for k in after}


def summary(res: LoadResult, counted: dict[str, float]) -> dict[str, Any]:
    ttfts = [r.ttft for r in res.ok]
    out = {"tokens": res.generated(), "wall": res.wall, "tps": res.generated() / res.wall,
           "ttft50": float(np.percentile(ttfts, 50)), "ttft99": float(np.percentile(ttfts, 99)),
           "ttft_max": max(ttfts), "errors": len(res.results) - len(res.ok),
           "per_stream_tokens": [r.completion_tokens for r in res.results]}  # fmt: skip
    steps = counted.get(STEPS, 0.0)
    return out | {"generate_s": counted.get(STAGE.format("generate"), 0.0),
                  "ground_s": counted.get(STAGE.format("ground"), 0.0),
                  "steps": steps,
                  "seqs_per_step": counted.get(STEP_SEQUENCES, 0.0) / steps if steps else 0.0}  # fmt: skip


def batching_rounds(url: str, headers: dict[str, str], questions: list[str],
                    rounds: int) -> list[dict[str, Any]]:  # fmt: skip
    """Each round, for 8 and then 16 streams: that many questions not asked before, one at
    a time and then together, on one server (new questions each time: a question asked
    again would find its whole prompt in a slot's cache). Temperature 0: an answer is
    the same alone or batched, so both ways generate the same tokens."""
    bodies: list[dict[str, object]] = [{"query": q, "temperature": 0} for q in questions]
    ask = f"{url}/v1/ask/stream"
    asyncio.run(one_at_a_time(ask, bodies[:1], headers=headers))  # pages the models in
    unasked = bodies[1:]
    out = []
    for k in range(min(rounds, len(unasked) // sum(TOGETHER))):
        row: dict[Any, Any] = {"round": k + 1}
        for level in TOGETHER:
            asked, unasked = unasked[:level], unasked[level:]
            alone, counted = phase(url, headers, asked, together=False)
            seq = summary(alone, counted)
            res, counted_together = phase(url, headers, asked, together=True)
            both = summary(res, counted_together)
            row[level] = {"alone": seq, "together": both, "ratio": both["tps"] / seq["tps"]}
            log(f"  round {k + 1}, {level:>2} streams: one at a time {seq['tps']:.1f} tok/s "
                f"({seq['tokens']} tokens), together {both['tps']:.1f} tok/s ({both['tokens']} "
                f"tokens): {row[level]['ratio']:.2f}x; TTFT p50/p99 {seq['ttft50'] * 1e3:.0f}/"
                f"{seq['ttft99'] * 1e3:.0f} vs {both['ttft50'] * 1e3:.0f}/{both['ttft99'] * 1e3:.0f} ms; "
                f"generate stage {seq['generate_s']:.1f} vs "
                f"{both['generate_s']:.1f} s, ground {both['ground_s']:.1f} s, "
                f"{both['seqs_per_step']:.1f} sequences per decode step")  # fmt: skip
        out.append(row)
    return out


def batching_server(data: Path, work: Path, name: str,
                    settings: dict[str, str]) -> tuple[Server, dict[str, str], int]:  # fmt: skip
    """A started server over a copy of `data`; with 16 slots if the shipped `parallel = 0`
    sized fewer on this machine (then `settings` says so)."""
    logfile = work / f"{name}.log"
    srv = appliance_server(copy_dir(data, work, name), MODELS, logfile, **settings).__enter__()
    slots = int(metric_totals(srv.url, srv.headers).get("appliance_generation_slots", 0))
    if slots >= max(TOGETHER) or "generation__parallel" in settings:
        return srv, settings, slots
    srv.__exit__()
    log(f"  {slots} slots as shipped: restarting with generation.parallel={max(TOGETHER)}")
    settings = {**settings, "generation__parallel": str(max(TOGETHER))}
    srv = appliance_server(copy_dir(data, work, f"{name}-16"), MODELS, logfile, **settings)
    return srv.__enter__(), settings, max(TOGETHER)


def batching_as_shipped(variants: list[tuple[str, dict[str, str]]], rounds: int,
                        documents: bool = True) -> dict[str, Any]:  # fmt: skip
    """Every variant (name, setting overrides) on its own server over a copy of the corpus
    (`documents=False`: an empty server, prompts without passages, as issue 20 measured)."""
    data, questions = pg_corpus()
    work = Path(tempfile.mkdtemp(prefix="serve-batching-"))
    if not documents:
        data = work / "empty"
        data.mkdir()
    out: dict[str, Any] = {"variants": {}, "documents": documents}
    try:
        for name, settings in variants:
            shown = ", ".join(f"{k}={v}" for k, v in settings.items()) or "shipped settings"
            log(f"batching, {name} ({shown}):")
            srv, used, slots = batching_server(data, work, name, settings)
            try:
                out["variants"][name] = {"settings": used, "slots": slots,
                                         "rounds": batching_rounds(srv.url, srv.headers, questions, rounds)}  # fmt: skip
            finally:
                srv.__exit__()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def render_batching(b: dict[str, Any]) -> str:
    corpus = "" if b.get("documents", True) else (
        " **Run on an empty server** (`--empty`: prompts without passages): not the shipped "
        "measurement."
    )  # fmt: skip
    lines = [
        "## Generation: the same questions one at a time and together, as shipped",
        "",
        "The answer benchmark's questions over its 50 PostgreSQL pages (ingested over HTTP), "
        "each followed by \"Explain in detail.\", through `/v1/ask/stream` with the shipped "
        "settings (prefix cache and repetition stop on), temperature 0, the shipped answer "
        "length (128 tokens). Each round takes 8 questions not asked before, one at a time "
        "and then together, then 16 more the same way, on the same server. tok/s: tokens "
        "generated (the server's count) over the wall time from the first request to the "
        f"last `done` event (evidence included).{corpus}",
        "",
        "| variant | slots | round | streams | one at a time tok/s | together tok/s | ratio | "
        "TTFT p50 / p99 / max ms, one at a time | together | `generate` stage s, one at a time / together | "
        "sequences per decode step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    verdicts = []
    for name, v in b["variants"].items():
        for row in v["rounds"]:
            for level in TOGETHER:
                a, t = row[level]["alone"], row[level]["together"]
                lines.append(
                    f"| {name} | {v['slots']} | {row['round']} | {level} | {a['tps']:.1f} | "
                    f"{t['tps']:.1f} | **{row[level]['ratio']:.2f}x** | "
                    f"{a['ttft50'] * 1e3:.0f} / {a['ttft99'] * 1e3:.0f} / {a['ttft_max'] * 1e3:.0f} | "
                    f"{t['ttft50'] * 1e3:.0f} / {t['ttft99'] * 1e3:.0f} / {t['ttft_max'] * 1e3:.0f} | "
                    f"{a['generate_s']:.1f} / {t['generate_s']:.1f} | {t['seqs_per_step']:.1f} |"
                )  # fmt: skip
        for level, target in zip(TOGETHER, (1.5, 1.6), strict=True):
            ratios = [row[level]["ratio"] for row in v["rounds"]]
            worst = min(ratios)
            verdicts.append(
                f"- {name}, {level} together vs one at a time: median "
                f"{float(np.median(ratios)):.2f}x, lowest {worst:.2f}x (target >= {target}x: "
                f"{'met' if worst >= target else 'MISSED'})"
            )
    return "\n".join([*lines, "", *verdicts, ""])


# --------------------------------------------------------------- main
def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import psutil

    return (f"{cpu}, {THREADS} cores available, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")  # fmt: skip


def variant(spec: str) -> tuple[str, dict[str, str]]:
    """`name:section__key=value,...` (settings as APPLIANCE__ environment overrides)."""
    name, _, pairs = spec.partition(":")
    settings = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    return name, settings


def main() -> None:
    from appliance.models.locate import prepare_default_chat, prepare_default_embedding

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=["all", "generation"], default="all",
                        help="generation: only batching as shipped (one at a time vs together)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of the batching section")
    parser.add_argument("--variant", type=variant, action="append", default=[],
                        help="name:section__key=value,... a server with these settings (repeatable; "
                             "default: one, 'shipped')")  # fmt: skip
    parser.add_argument("--empty", action="store_true",
                        help="batching on servers without documents (short prompts)")  # fmt: skip
    args = parser.parse_args()
    chat = prepare_default_chat(MODELS)
    prepare_default_embedding(MODELS)
    variants = args.variant or [("shipped", {})]
    t0 = time.monotonic()
    if args.section == "generation":
        batching = batching_as_shipped(variants, args.rounds, documents=not args.empty)
        print(render_batching(batching))
        print(f"(serve_load.py --section generation: {time.monotonic() - t0:.0f} s)")
        return
    app_index, ref_index = build_index(N_INDEX)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    logs = work / "logs"
    logs.mkdir()
    # batching as shipped is its own section (bench/batching.py), not measured twice
    r: dict[str, Any] = {"machine": machine(), "model": chat.name}
    try:
        log("appliance, continuous batching (parallel=16):")
        with appliance_server(copy_dir(app_index, work, "a1"), MODELS, logs / "a1.log",
                              generation__parallel="16", models__chat_ctx=str(CTX),
                              generation__prompt=COMPARED) as srv:  # fmt: skip
            r["batched"] = generation_levels(srv.url, headers=srv.headers)
            r["single_tps"] = single_streams(srv.url, srv.headers)
            messages = llama_server_messages(srv.url, srv.headers)
            r["batched_rss"] = srv.peak_rss
        log("appliance, one at a time (parallel=1):")
        with appliance_server(copy_dir(app_index, work, "a2"), MODELS, logs / "a2.log",
                              generation__parallel="1", models__chat_ctx=str(CTX),
                              generation__prompt=COMPARED) as srv:  # fmt: skip
            r["sequential"] = generation_levels(srv.url, headers=srv.headers)
        binary = build_llama_server()
        if binary:
            log("llama-server --parallel 16:")
            port = free_port()
            argv = [str(binary), "-m", str(chat), "-t", str(THREADS), "-c", str(CTX * 16),
                    "--parallel", "16", "--port", str(port), "--host", "127.0.0.1", "-b", "256",
                    "--no-repack"]  # as the appliance: AMX/repacked buffers fault on this CPU  # fmt: skip
            with Server(
                "llama-server", argv, {}, port, "/health", logs / "llama-server.log"
            ) as srv:
                r["llama_server"] = generation_levels(srv.url, [
                    {k: v for k, v in b.items()} for b in messages
                ])  # fmt: skip
        log("raw llama-cpp-python, one stream:")
        r["raw_tps"] = raw_single_stream(chat, [b["messages"] for b in messages])
        log(f"  {r['raw_tps']:.1f} tok/s")
        log("search, appliance:")
        with appliance_server(copy_dir(app_index, work, "a3"), MODELS, logs / "a3.log") as srv:
            r["search_app"] = search_levels(srv.url, srv.headers)
            log("healthz idle vs under load:")
            r["healthz"] = asyncio.run(healthz_under_load(srv.url, srv.headers))
            log("50 concurrent askers:")
            res = asyncio.run(concurrent_streams(f"{srv.url}/v1/ask/stream", ask_bodies(50),
                                                 headers=srv.headers))  # fmt: skip
            r["askers50"] = {"ttft99": res.ttft(99), "ttft50": res.ttft(50), "n503": res.count(503),
                             "ok": len(res.ok)}  # fmt: skip
            r["default_rss"] = srv.peak_rss
        log("search, FastAPI reference:")
        port = free_port()
        ref_env = {"REFERENCE_MODEL": str(MODELS / "all-MiniLM-L6-v2.F16.gguf"),
                   "REFERENCE_STORE": str(copy_dir(ref_index, work, "ref"))}  # fmt: skip
        argv = [sys.executable, "-m", "uvicorn", "bench.reference.app:app", "--port", str(port),
                "--log-level", "warning"]  # fmt: skip
        with Server("reference", argv, ref_env, port, "/healthz", logs / "ref.log") as srv:
            r["search_ref"] = search_levels(srv.url, srv.headers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(r)
    print(report)
    (CACHE / "serve_load.md").write_text(report)
    (CACHE / "serve_load.json").write_text(json.dumps(r, indent=1))


def render(r: dict[str, Any]) -> str:
    b, s, ls = r["batched"], r["sequential"], r.get("llama_server")
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (bench/serve_load.py); do not edit by hand.",
        "",
        f"- machine: {r['machine']}",
        f"- chat model: {r['model']}, {MAX_TOKENS} tokens per answer, temperature 0, {THREADS} threads",
        f"- search index: {N_INDEX} chunks of real all-MiniLM-L6-v2 embeddings",
        "",
        "## Generation: concurrent streams",
        "",
        "The serving comparison at 1, 4, 8 and 16 streams: one 16-slot server vs a one-slot "
        "server vs llama-server, over a synthetic 20k-chunk index, 128 tokens per answer.",
        "",
        "| streams | appliance tok/s | one-at-a-time tok/s | llama-server tok/s | vs one-at-a-time | vs llama-server | appliance TTFT p50 / p99 ms | one-at-a-time TTFT p50 / p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in LEVELS:
        ref = ls[n]["tps"] if ls else float("nan")
        lines.append(
            f"| {n} | {b[n]['tps']:.1f} | {s[n]['tps']:.1f} | {ref:.1f} | {b[n]['tps'] / s[n]['tps']:.2f}x | "
            f"{b[n]['tps'] / ref:.2f}x | {b[n]['ttft50'] * 1e3:.0f} / {b[n]['ttft99'] * 1e3:.0f} | "
            f"{s[n]['ttft50'] * 1e3:.0f} / {s[n]['ttft99'] * 1e3:.0f} |"
        )  # fmt: skip
    if not ls:
        lines.append("\nllama-server could not be built here: that column is skipped.")
    lines += [
        "",
        f"p99 TTFT with 8 streams, appliance / one-at-a-time: **{b[8]['ttft99'] / s[8]['ttft99']:.2f}x** (target ≤ 0.3x).",
        "",
        f"Single stream, median decode rate over the {len(QUESTIONS)} questions (first to last token, "
        f"over HTTP): appliance {r['single_tps']:.1f} tok/s vs raw llama-cpp-python in process "
        f"{r['raw_tps']:.1f} tok/s: **{r['single_tps'] / r['raw_tps']:.2f}x** (target ≥ 0.95x).",
        "",
        "## Search endpoint",
        "",
        "| clients | appliance req/s | p50 / p99 ms | FastAPI reference req/s | p50 / p99 ms | ratio |",
        "| --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for c in (1, 10, 50):
        a, f = r["search_app"][c], r["search_ref"][c]
        lines.append(f"| {c} | {a['rps']:.1f} | {a['p50']:.1f} / {a['p99']:.1f} | {f['rps']:.1f} | "
                     f"{f['p50']:.1f} / {f['p99']:.1f} | {a['rps'] / f['rps']:.2f}x |")  # fmt: skip
    h, a50 = r["healthz"], r["askers50"]
    lines += [
        "",
        "## Under load",
        "",
        f"- /healthz p99: idle {h['idle_p99']:.2f} ms, under 16 streams + 10 search clients "
        f"{h['busy_p99']:.2f} ms: **{h['busy_p99'] / h['idle_p99']:.2f}x** (target ≤ 2x)",
        f"- 50 concurrent askers (default settings): TTFT p50 {a50['ttft50'] * 1e3:.0f} ms, "
        f"p99 {a50['ttft99'] * 1e3:.0f} ms; {a50['n503']} answered 503; {a50['ok']} streamed",
        f"- peak server RSS: {r['default_rss'] / 2**20:.0f} MiB (default settings, 50 askers), "
        f"{r['batched_rss'] / 2**20:.0f} MiB (16 slots) (target ≤ 1.2 GB)",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
