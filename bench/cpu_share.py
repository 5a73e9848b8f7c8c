"""llama.cpp beside busy loops: thread count, nice and scheduling class (issue 20).

Embeds one ~150-token text in a loop (MiniLM, as ingestion does) and decodes one stream
(SmolLM2), each for a few seconds per setting, first on an idle machine, then beside a
nice-0 busy loop on every CPU (separate processes, killed after). Prints each setting's
rate idle and busy, busy/idle, and busy against the best idle rate. This is the table in
docs/architecture.md ("CPU share on a busy server") that chose nice 0, SCHED_BATCH and
one thread fewer per core held by another process.

Run: `python bench/cpu_share.py [seconds per cell, default 6]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appliance.engine.embedder import embedding_model  # noqa: E402
from appliance.engine.llama_loader import load_llama  # noqa: E402
from appliance.models.locate import prepare_default_chat, prepare_default_embedding  # noqa: E402

MODELS = REPO / ".cache" / "models"
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
TEXT = (
    "Facilities staff log every visit in the building register, and the register is "
    "checked each month by the office manager. "
) * 8
CPUS = len(os.sched_getaffinity(0))
# (threads, nice, SCHED_BATCH)
SETTINGS = [(CPUS, 10, False), (CPUS, 0, False), (CPUS, 0, True), (1, 0, False), (1, 0, True)]


def busy_loops(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def on_thread(fn: Callable[[], float], nice: int, batch: bool) -> float:
    """Run `fn` on a fresh thread with this nice and class (llama.cpp's threads inherit)."""
    out: list[float] = []

    def run() -> None:
        tid = threading.get_native_id()
        if batch:
            os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
        if nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        out.append(fn())

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[0]


def embed_rate(embed: Path, threads: int) -> float:
    model = embedding_model(embed, n_ctx=256, n_threads=threads, train_ctx=512)
    ctx = model.context()
    ctx.embed_one(TEXT)
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < SECONDS:
        ctx.embed_one(TEXT)
        n += 1
    rate = n / (time.monotonic() - t0)
    ctx.close()
    model.close()
    return rate


def decode_rate(chat: Path, threads: int) -> float:
    llm = load_llama(str(chat), n_ctx=512, n_threads=threads, n_threads_batch=threads)
    prompt = llm.tokenize(b"Write a long report about the warehouse.")
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < SECONDS:
        llm.reset()
        llm.eval(prompt)
        for _ in range(64):
            llm.eval([llm.sample()])
            n += 1
    rate = n / (time.monotonic() - t0)
    llm.close()
    return rate


def main() -> None:
    chat = prepare_default_chat(MODELS)
    embed = prepare_default_embedding(MODELS)
    work = {"embed texts/s": lambda t: embed_rate(embed, t),
            "decode tok/s": lambda t: decode_rate(chat, t)}  # fmt: skip
    rates: dict[tuple[str, int, tuple[int, int, bool]], float] = {}
    for loops in (0, CPUS):
        procs = busy_loops(loops)
        try:
            time.sleep(0.5)
            for what, fn in work.items():
                for s in SETTINGS:
                    rates[what, loops, s] = on_thread(lambda fn=fn, s=s: fn(s[0]), s[1], s[2])
                    print(f"  {what} busy loops={loops} {s}: {rates[what, loops, s]:.1f}",
                          file=sys.stderr, flush=True)  # fmt: skip
        finally:
            for p in procs:
                p.kill()
                p.wait()
    print(f"{CPUS} CPUs, {SECONDS:.0f} s per cell; busy = a nice-0 busy loop on every CPU\n")
    print("| work | threads, nice, class | idle | busy | busy/idle | busy / best idle |")
    print("| --- | --- | --- | --- | --- | --- |")
    for what in work:
        best = max(rates[what, 0, s] for s in SETTINGS)
        for s in SETTINGS:
            idle, busy = rates[what, 0, s], rates[what, CPUS, s]
            label = f"{s[0]}, nice {s[1]}, {'SCHED_BATCH' if s[2] else 'normal'}"
            print(f"| {what} | {label} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f}x "
                  f"| {busy / best:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
