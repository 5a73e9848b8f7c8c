"""Search while answers stream: query embeddings on their own thread vs between decode steps.

Issue 4 asked to measure, not assume, whether a dedicated embedding thread beside the
generation thread wins on this machine. Two servers on the same 20k-chunk index differ
only in `models.query_thread`. Each runs 8 concurrent streamed answers while a search
starts every 50 ms (open loop); the table gives search latency and the answers' aggregate tok/s.
Each configuration runs twice, alternating, so drift shows.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import appliance_server, concurrent_streams  # noqa: E402
from bench.serve_load import MODELS, ask_bodies, build_index, copy_dir, log  # noqa: E402
from bench.store_engines import texts  # noqa: E402

STREAMS = 8
SEARCH_EVERY_S = 0.05


async def search_while_streaming(url: str, headers: dict[str, str]) -> tuple[list[float], float]:
    """Open loop: a search starts every SEARCH_EVERY_S whatever the last one is doing, so
    both configurations embed the same number of queries per second."""
    answers = asyncio.create_task(concurrent_streams(f"{url}/v1/ask/stream", ask_bodies(STREAMS),
                                                      headers=headers))  # fmt: skip
    queries = texts(200, 5)
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:

        async def search(q: str) -> None:
            t0 = time.perf_counter()
            r = await client.post(f"{url}/v1/search", json={"query": q, "top_k": 5})
            r.raise_for_status()
            latencies.append(time.perf_counter() - t0)

        await asyncio.sleep(1.0)  # let the prompts be read: measure during decoding
        started = []
        while not answers.done():
            started.append(asyncio.create_task(search(queries[len(started) % 200])))
            await asyncio.sleep(SEARCH_EVERY_S)
        await asyncio.gather(*started)
    return latencies, (await answers).tokens_per_s()


def main() -> None:
    from appliance.models.locate import prepare_default_chat, prepare_default_embedding

    prepare_default_chat(MODELS)
    prepare_default_embedding(MODELS)
    index, _ = build_index(20000)
    work = Path(tempfile.mkdtemp(prefix="query-thread-"))
    rows = []
    try:
        for run, query_thread in enumerate(["true", "false", "true", "false"]):
            with appliance_server(copy_dir(index, work, f"r{run}"), MODELS, work / f"r{run}.log",
                                  generation__parallel=str(STREAMS),
                                  models__query_thread=query_thread) as srv:  # fmt: skip
                lat, tps = asyncio.run(search_while_streaming(srv.url, srv.headers))
            p50, p99 = (float(np.percentile(lat, q) * 1e3) for q in (50, 99))
            rows.append((query_thread, p50, p99, tps, len(lat)))
            log(f"  query_thread={query_thread}: search p50 {p50:.1f} ms p99 {p99:.1f} ms, "
                f"{tps:.1f} tok/s")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"search every {SEARCH_EVERY_S * 1e3:.0f} ms while {STREAMS} answers stream "
          f"(20k chunks, default models)")  # fmt: skip
    print(
        f"{'query embeddings':<28} {'search p50 ms':>13} {'p99 ms':>8} {'answers tok/s':>14} {'n':>5}"
    )
    names = {"true": "own thread (default)", "false": "between decode steps"}
    for qt, p50, p99, tps, n in rows:
        print(f"{names[qt]:<28} {p50:>13.1f} {p99:>8.1f} {tps:>14.1f} {n:>5}")
    own = [r for r in rows if r[0] == "true"]
    shared = [r for r in rows if r[0] == "false"]

    def med(rs: list[tuple[str, float, float, float, int]], i: int) -> float:
        return float(np.median([r[i] for r in rs]))

    print(f"own thread / between steps: search p50 {med(own, 1) / med(shared, 1):.2f}x, "
          f"p99 {med(own, 2) / med(shared, 2):.2f}x, answers tok/s {med(own, 3) / med(shared, 3):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
